# ECS Fargate task definitions and services for the workflow agent (gRPC,
# registered in Cloud Map) and the API gateway (HTTP, the agents' client).

locals {
  agent_container_name   = "agent"
  gateway_container_name = "gateway"

  # Shutdown: SIGTERM -> NOT_SERVING for drain_seconds -> in-flight calls get
  # grace_seconds -> exit 0; SIGKILL only after stop_timeout_seconds, which a
  # variable validation keeps above drain + grace + 5 s.
  agent_container = {
    name                   = local.agent_container_name
    image                  = var.agent_image
    essential              = true
    entryPoint             = var.container_entrypoint
    command                = var.agent_command
    readonlyRootFilesystem = var.readonly_root_filesystem
    stopTimeout            = var.stop_timeout_seconds
    # tini as PID 1 forwards SIGTERM to the server and reaps the probe's
    # processes.
    linuxParameters = { initProcessEnabled = true }
    portMappings = [{
      name          = "grpc"
      containerPort = var.grpc_port
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(local.agent_environment)) : { name = k, value = local.agent_environment[k] }]
    healthCheck = {
      command     = local.agent_health_command
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 10
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.agent.name
        awslogs-region        = local.region
        awslogs-stream-prefix = local.agent_container_name
      }
    }
  }

  gateway_container = {
    name                   = local.gateway_container_name
    image                  = var.gateway_image
    essential              = true
    entryPoint             = var.container_entrypoint
    command                = local.gateway_command
    readonlyRootFilesystem = var.readonly_root_filesystem
    stopTimeout            = var.stop_timeout_seconds
    linuxParameters        = { initProcessEnabled = true }
    portMappings = [{
      name          = "http"
      containerPort = var.gateway_port
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(local.gateway_environment)) : { name = k, value = local.gateway_environment[k] }]
    healthCheck = {
      command     = local.gateway_health_command
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 10
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.gateway.name
        awslogs-region        = local.region
        awslogs-stream-prefix = local.gateway_container_name
      }
    }
  }
}

resource "aws_ecs_task_definition" "agent" {
  family                   = local.agent_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.agent_cpu)
  memory                   = tostring(var.agent_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.agent_task.arn
  container_definitions    = jsonencode([local.agent_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  tags = local.common_tags
}

resource "aws_ecs_task_definition" "gateway" {
  family                   = local.gateway_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.gateway_cpu)
  memory                   = tostring(var.gateway_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.gateway_task.arn
  container_definitions    = jsonencode([local.gateway_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  tags = local.common_tags
}

resource "aws_ecs_service" "agent" {
  name             = local.agent_name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.agent.arn
  desired_count    = var.agent_desired_count
  launch_type      = length(var.capacity_provider_strategy) == 0 ? "FARGATE" : null
  platform_version = "LATEST"

  dynamic "capacity_provider_strategy" {
    for_each = var.capacity_provider_strategy
    content {
      capacity_provider = capacity_provider_strategy.value.capacity_provider
      weight            = capacity_provider_strategy.value.weight
      base              = capacity_provider_strategy.value.base
    }
  }

  # `terraform apply` returns only once the deployment is steady (or fails).
  wait_for_steady_state = var.wait_for_steady_state

  # Rolling deploy: never below the desired count, up to twice it while new
  # tasks start; a deployment that cannot get healthy rolls back by itself.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  dynamic "alarms" {
    for_each = length(local.agent_alarm_names) > 0 ? [local.agent_alarm_names] : []
    content {
      alarm_names = alarms.value
      enable      = true
      rollback    = true
    }
  }

  enable_execute_command  = var.enable_execute_command
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.agent.id]
    assign_public_ip = false
  }

  # Cloud Map registration (A records: the task's ENI address). SRV records
  # need the port, taken from the container definition.
  service_registries {
    registry_arn   = aws_service_discovery_service.agent.arn
    container_name = var.enable_srv_records ? local.agent_container_name : null
    container_port = var.enable_srv_records ? var.grpc_port : null
  }

  dynamic "load_balancer" {
    for_each = var.enable_nlb ? [aws_lb_target_group.agent[0].arn] : []
    content {
      target_group_arn = load_balancer.value
      container_name   = local.agent_container_name
      container_port   = var.grpc_port
    }
  }

  # Only valid with a load balancer: NLB health checks of a starting task are
  # ignored for this long.
  health_check_grace_period_seconds = var.enable_nlb ? 30 : null

  tags = local.common_tags

  # Application Auto Scaling owns the count after creation (autoscaling.tf).
  lifecycle {
    ignore_changes = [desired_count]
  }

  # The listener attaches the target group to the NLB, which ECS requires
  # before a service may use it; the role policy must outlive the service
  # (the provider's note on services stuck DRAINING).
  depends_on = [aws_lb_listener.agent, aws_iam_role_policy.execution, aws_cloudwatch_metric_alarm.deployment_cpu]
}

resource "aws_ecs_service" "gateway" {
  name             = local.gateway_name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.gateway.arn
  desired_count    = var.gateway_desired_count
  launch_type      = length(var.capacity_provider_strategy) == 0 ? "FARGATE" : null
  platform_version = "LATEST"

  dynamic "capacity_provider_strategy" {
    for_each = var.capacity_provider_strategy
    content {
      capacity_provider = capacity_provider_strategy.value.capacity_provider
      weight            = capacity_provider_strategy.value.weight
      base              = capacity_provider_strategy.value.base
    }
  }

  # `terraform apply` returns only once the deployment is steady (or fails).
  wait_for_steady_state = var.wait_for_steady_state

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  dynamic "alarms" {
    for_each = length(local.gateway_alarm_names) > 0 ? [local.gateway_alarm_names] : []
    content {
      alarm_names = alarms.value
      enable      = true
      rollback    = true
    }
  }

  enable_execute_command  = var.enable_execute_command
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = var.gateway_target_group_arn == null ? [] : [var.gateway_target_group_arn]
    content {
      target_group_arn = load_balancer.value
      container_name   = local.gateway_container_name
      container_port   = var.gateway_port
    }
  }

  health_check_grace_period_seconds = var.gateway_target_group_arn == null ? null : 30

  tags = local.common_tags

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [
    aws_iam_role_policy.execution,
    aws_iam_role_policy.gateway_task,
    aws_cloudwatch_metric_alarm.deployment_cpu,
    aws_cloudwatch_metric_alarm.gateway_5xx,
  ]
}
