# Optional: the xDS control plane (`ecsgrpc xds serve`, docs/xds.md) as its own
# ECS service, and the gateway on xds:///. Everything here exists only with
# enable_xds_control_plane = true.
#
# The control plane polls Cloud Map once for the whole fleet (its task role
# may discover, nothing else), serves ADS on xds_port to the gateway's
# security group and xds_client_security_group_ids only, watches the agents'
# health on the gRPC port, and registers its replicas in Cloud Map as
# `xds.<namespace>`, the name clients put in their bootstrap.

locals {
  xds_enabled = var.enable_xds_control_plane
  xds_count   = local.xds_enabled ? 1 : 0
  xds_name    = "${var.name_prefix}-xds"
  xds_fqdn    = "${var.xds_cloudmap_service_name}.${var.cloudmap_namespace}"
  # What clients put in ECSGRPC_XDS_SERVERS (or `ecsgrpc xds bootstrap --server`).
  xds_servers = "${local.xds_fqdn}:${var.xds_port}"
  # The agents as xDS serves them: clients call xds:///<cloudmap_service_name>.
  xds_target          = "xds:///${var.cloudmap_service_name}"
  xds_container_name  = "xds"
  xds_image           = var.xds_image != null ? var.xds_image : var.gateway_image
  xds_health_service  = "envoy.service.discovery.v3.AggregatedDiscoveryService"
  gateway_uses_xds    = local.xds_enabled && var.gateway_uses_xds
  xds_client_sg_ids   = toset(var.xds_client_security_group_ids)
  xds_https_cidrs     = local.xds_enabled ? toset(var.aws_api_egress_cidr_blocks) : toset([])
  xds_https_prefixes  = local.xds_enabled ? toset(var.aws_api_egress_prefix_list_ids) : toset([])
  xds_client_sg_rules = local.xds_enabled ? local.xds_client_sg_ids : toset([])

  # Merged last into the gateway's environment (locals.tf): with
  # gateway_uses_xds the gateway calls the agents through gRPC's own xDS
  # client; its bootstrap is built at start from ECSGRPC_XDS_SERVERS and the
  # task metadata endpoint (zone, task ARN).
  gateway_xds_environment = local.gateway_uses_xds ? {
    WORKFLOW_SERVICE_TARGET = local.xds_target
    ECSGRPC_XDS_SERVERS     = local.xds_servers
  } : {}

  xds_command = [
    "xds", "serve",
    "--host", "0.0.0.0",
    "--port", tostring(var.xds_port),
    "--service", "${var.cloudmap_service_name}=${local.cloudmap_target}&poll=${var.xds_poll_seconds}",
    "--drain-seconds", tostring(var.drain_seconds),
    "--log-json",
  ]

  xds_container = {
    name                   = local.xds_container_name
    image                  = local.xds_image
    essential              = true
    entryPoint             = var.container_entrypoint
    command                = local.xds_command
    readonlyRootFilesystem = var.readonly_root_filesystem
    stopTimeout            = var.stop_timeout_seconds
    linuxParameters        = { initProcessEnabled = true }
    portMappings = [{
      name          = "xds"
      containerPort = var.xds_port
      protocol      = "tcp"
    }]
    environment = [{ name = "AWS_REGION", value = local.region }]
    # SERVING once Cloud Map has answered for every service.
    healthCheck = {
      command     = ["CMD", "ecsgrpc", "probe", "127.0.0.1:${var.xds_port}", "--service", local.xds_health_service, "--timeout", "2"]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 15
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = "/ecs/${local.xds_name}"
        awslogs-region        = local.region
        awslogs-stream-prefix = local.xds_container_name
      }
    }
  }

  xds_task_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        # DiscoverInstances supports no resource-level permissions: "*" is the only valid Resource.
        Sid      = "CloudMapDiscover"
        Effect   = "Allow"
        Action   = ["servicediscovery:DiscoverInstances", "servicediscovery:DiscoverInstancesRevision"]
        Resource = "*"
      },
      {
        Sid       = "EcsListTasksInCluster"
        Effect    = "Allow"
        Action    = ["ecs:ListTasks"]
        Resource  = "*"
        Condition = { ArnEquals = { "ecs:cluster" = var.cluster_arn } }
      },
      {
        Sid       = "EcsDescribeTasksInCluster"
        Effect    = "Allow"
        Action    = ["ecs:DescribeTasks"]
        Resource  = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"
        Condition = { ArnEquals = { "ecs:cluster" = var.cluster_arn } }
      },
    ], local.exec_command_statements)
  })
}

# --- Cloud Map: the replicas' DNS name -------------------------------------------

resource "aws_service_discovery_service" "xds" {
  count       = local.xds_count
  name        = var.xds_cloudmap_service_name
  description = "ecsgrpc xDS control plane replicas (ADS on port ${var.xds_port})"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = var.cloudmap_dns_ttl
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = local.common_tags
}

# --- logs and IAM ----------------------------------------------------------------

resource "aws_cloudwatch_log_group" "xds" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default, for cost); raise it where a one-year policy applies.
  count             = local.xds_count
  name              = "/ecs/${local.xds_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.common_tags
}

resource "aws_iam_role" "xds_execution" {
  count              = local.xds_count
  name               = "${local.xds_name}-execution"
  description        = "Pulls the xDS control plane's image and writes its logs."
  assume_role_policy = local.ecs_tasks_trust_policy
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "xds_execution" {
  count = local.xds_count
  name  = "pull-and-log"
  role  = aws_iam_role.xds_execution[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.ecr_statements, [{
      Sid      = "WriteOwnLogs"
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = ["${aws_cloudwatch_log_group.xds[0].arn}:*"]
    }])
  })
}

resource "aws_iam_role" "xds_task" {
  count              = local.xds_count
  name               = "${local.xds_name}-task"
  description        = "xDS control plane: discovers the agents through Cloud Map and the ECS API."
  assume_role_policy = local.ecs_tasks_trust_policy
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "xds_task" {
  count  = local.xds_count
  name   = "discover-agents"
  role   = aws_iam_role.xds_task[0].id
  policy = local.xds_task_policy
}

# --- security groups ---------------------------------------------------------------

resource "aws_security_group" "xds" {
  count       = local.xds_count
  name        = "${local.xds_name}-sg"
  description = "xDS control plane: ADS ${var.xds_port} from client security groups only"
  vpc_id      = var.vpc_id
  tags        = merge(local.common_tags, { Name = "${local.xds_name}-sg" })
}

resource "aws_vpc_security_group_ingress_rule" "xds_from_gateway" {
  count                        = local.xds_count
  security_group_id            = aws_security_group.xds[0].id
  description                  = "ADS from the API gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.xds_port
  to_port                      = var.xds_port
  referenced_security_group_id = aws_security_group.gateway.id
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_ingress_rule" "xds_from_clients" {
  for_each                     = local.xds_client_sg_rules
  security_group_id            = aws_security_group.xds[0].id
  description                  = "ADS from an allowed xDS client security group"
  ip_protocol                  = "tcp"
  from_port                    = var.xds_port
  to_port                      = var.xds_port
  referenced_security_group_id = each.value
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "xds_to_agent" {
  count                        = local.xds_count
  security_group_id            = aws_security_group.xds[0].id
  description                  = "gRPC health watches of the workflow agent tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = aws_security_group.agent.id
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_ingress_rule" "agent_from_xds" {
  count                        = local.xds_count
  security_group_id            = aws_security_group.agent.id
  description                  = "gRPC health watches from the xDS control plane"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = aws_security_group.xds[0].id
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_xds" {
  count                        = local.gateway_uses_xds ? 1 : 0
  security_group_id            = aws_security_group.gateway.id
  description                  = "ADS to the xDS control plane"
  ip_protocol                  = "tcp"
  from_port                    = var.xds_port
  to_port                      = var.xds_port
  referenced_security_group_id = aws_security_group.xds[0].id
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "xds_https_to_aws_apis" {
  for_each          = local.xds_https_cidrs
  security_group_id = aws_security_group.xds[0].id
  description       = "HTTPS to AWS APIs (ECR, CloudWatch Logs, Cloud Map, ECS)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
  tags              = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "xds_https_to_prefix_lists" {
  for_each          = local.xds_https_prefixes
  security_group_id = aws_security_group.xds[0].id
  description       = "HTTPS to AWS endpoints of a managed prefix list (e.g. S3 for ECR layers)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value
  tags              = local.common_tags
}

# --- the service ---------------------------------------------------------------------

resource "aws_ecs_task_definition" "xds" {
  count                    = local.xds_count
  family                   = local.xds_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.xds_cpu)
  memory                   = tostring(var.xds_memory)
  execution_role_arn       = aws_iam_role.xds_execution[0].arn
  task_role_arn            = aws_iam_role.xds_task[0].arn
  container_definitions    = jsonencode([local.xds_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  tags = local.common_tags
}

resource "aws_ecs_service" "xds" {
  count            = local.xds_count
  name             = local.xds_name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.xds[0].arn
  desired_count    = var.xds_desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # Replicas roll one at a time: clients of a stopping replica reconnect to
  # another (they keep their last configuration meanwhile).
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  enable_execute_command  = var.enable_execute_command
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.xds[0].id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.xds[0].arn
  }

  tags = local.common_tags

  depends_on = [aws_iam_role_policy.xds_execution]
}

output "xds_servers" {
  description = "The control plane's HOST:PORT for client bootstraps (ECSGRPC_XDS_SERVERS, `ecsgrpc xds bootstrap --server`); null when disabled."
  value       = local.xds_enabled ? local.xds_servers : null
}

output "xds_target" {
  description = "The agents' xDS target (xds:///NAME) for gRPC clients in any language; null when disabled."
  value       = local.xds_enabled ? local.xds_target : null
}
