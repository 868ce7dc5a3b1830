# Deployment alarms. ECS watches them during a deployment (the service's
# `alarms` block, next to the circuit breaker): the circuit breaker catches
# tasks that never get healthy; these catch a release that starts but
# misbehaves, and roll it back too.

locals {
  cpu_alarms = var.deployment_alarm_cpu_percent == null ? {} : {
    agent   = local.agent_name
    gateway = local.gateway_name
  }
  gateway_5xx_alarm = var.gateway_alb_arn != null
}

resource "aws_cloudwatch_metric_alarm" "deployment_cpu" {
  for_each = local.cpu_alarms

  alarm_name          = "${each.value}-deployment-cpu"
  alarm_description   = "${each.value}: average CPU at or above ${var.deployment_alarm_cpu_percent}% for 3 minutes; rolls back a deployment in progress."
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = var.deployment_alarm_cpu_percent
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  dimensions = {
    ClusterName = local.cluster_name
    ServiceName = each.value
  }
  tags = local.common_tags
}

resource "aws_cloudwatch_metric_alarm" "gateway_5xx" {
  count = local.gateway_5xx_alarm ? 1 : 0

  alarm_name          = "${local.gateway_name}-deployment-5xx"
  alarm_description   = "${local.gateway_name}: ${var.gateway_5xx_alarm_threshold} or more 5xx answers a minute for 2 minutes; rolls back a deployment in progress."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = var.gateway_5xx_alarm_threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  dimensions = {
    LoadBalancer = local.gateway_alb_suffix
    TargetGroup  = local.gateway_tg_suffix
  }
  tags = local.common_tags
}

locals {
  # Names built from the same locals as the alarms (known at plan); the
  # services depend on the alarm resources, so the alarms exist first.
  agent_alarm_names = concat(
    [for k, name in local.cpu_alarms : "${name}-deployment-cpu" if k == "agent"],
    var.agent_deployment_alarm_names,
  )
  gateway_alarm_names = concat(
    [for k, name in local.cpu_alarms : "${name}-deployment-cpu" if k == "gateway"],
    local.gateway_5xx_alarm ? ["${local.gateway_name}-deployment-5xx"] : [],
    var.gateway_deployment_alarm_names,
  )
}
