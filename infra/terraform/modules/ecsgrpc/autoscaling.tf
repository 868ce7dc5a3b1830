# Target-tracking autoscaling (Application Auto Scaling) for both services.
#
# Agents: CPU, and in-flight conversations per task, which the agent itself
# publishes (CloudWatch embedded metric format in its awslogs stream, no API
# call and no IAM permission needed). CPU alone lags for streaming work: a
# task with many slow conversations open can sit at low CPU.
# Gateway: CPU, and ALB requests per target when it sits behind an ALB.
#
# Scale-in stops tasks the ECS way: SIGTERM, the agent drains (NOT_SERVING,
# drain, grace) within stopTimeout. The scale-in cooldown is kept above
# stopTimeout by a validation, so one scale-in has finished draining before
# the next is decided.

locals {
  scalable = {
    agent = {
      service = aws_ecs_service.agent.name
      min     = var.agent_min_count
      max     = var.agent_max_count
    }
    gateway = {
      service = aws_ecs_service.gateway.name
      min     = var.gateway_min_count
      max     = var.gateway_max_count
    }
  }

  cpu_policies = var.autoscaling_cpu_target_percent == null ? toset([]) : toset(["agent", "gateway"])

  # "app/NAME/ID/targetgroup/NAME/ID": the ALBRequestCountPerTarget label.
  gateway_alb_suffix = var.gateway_alb_arn == null ? null : split(":loadbalancer/", var.gateway_alb_arn)[1]
  gateway_tg_suffix  = var.gateway_target_group_arn == null ? null : "targetgroup/${split(":targetgroup/", var.gateway_target_group_arn)[1]}"
  gateway_request_policy = (
    var.gateway_alb_arn != null && var.gateway_requests_per_task_target != null
  )
}

resource "aws_appautoscaling_target" "this" {
  for_each = local.scalable

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${local.cluster_name}/${each.value.service}"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
  tags               = local.common_tags
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each = local.cpu_policies

  name               = "${local.scalable[each.key].service}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.autoscaling_cpu_target_percent
    scale_in_cooldown  = var.scale_in_cooldown_seconds
    scale_out_cooldown = var.scale_out_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "agent_conversations" {
  count = var.agent_conversations_per_task_target == null ? 0 : 1

  name               = "${local.agent_name}-conversations-in-flight"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this["agent"].service_namespace
  scalable_dimension = aws_appautoscaling_target.this["agent"].scalable_dimension
  resource_id        = aws_appautoscaling_target.this["agent"].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.agent_conversations_per_task_target
    scale_in_cooldown  = var.scale_in_cooldown_seconds
    scale_out_cooldown = var.scale_out_cooldown_seconds

    # Every task writes its own count (same dimensions) every
    # AGENT_METRICS_INTERVAL_SECONDS: the Average over them is per task.
    customized_metric_specification {
      metric_name = local.agent_metric_name
      namespace   = var.metrics_namespace
      statistic   = "Average"

      dimensions {
        name  = "ClusterName"
        value = local.cluster_name
      }

      dimensions {
        name  = "ServiceName"
        value = local.agent_name
      }
    }
  }
}

resource "aws_appautoscaling_policy" "gateway_requests" {
  count = local.gateway_request_policy ? 1 : 0

  name               = "${local.gateway_name}-alb-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this["gateway"].service_namespace
  scalable_dimension = aws_appautoscaling_target.this["gateway"].scalable_dimension
  resource_id        = aws_appautoscaling_target.this["gateway"].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.gateway_requests_per_task_target
    scale_in_cooldown  = var.scale_in_cooldown_seconds
    scale_out_cooldown = var.scale_out_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${local.gateway_alb_suffix}/${local.gateway_tg_suffix}"
    }
  }
}
