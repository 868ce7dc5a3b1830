# A cluster plus the ecsgrpc module: Cloud Map namespace and service, the
# agent and gateway services, their roles, security groups, logs, autoscaling
# and deployment alarms.

resource "aws_ecs_cluster" "this" {
  name = "ecsgrpc-example"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# Both Fargate capacity providers on the cluster, so capacity_provider_strategy
# may use either (FARGATE_SPOT: up to 70 % cheaper, tasks can be reclaimed
# with a 2-minute warning; the agent's drain fits well inside it).
resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]
}

# The cluster's ARN written out from known parts, so the whole task
# definition (its region, log settings, commands) is known at plan time and
# can be reviewed in `terraform show -json`; aws_ecs_cluster.this.arn would
# only be known after apply.
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  cluster_arn = "arn:${data.aws_partition.current.partition}:ecs:${var.region}:${data.aws_caller_identity.current.account_id}:cluster/${aws_ecs_cluster.this.name}"
}

module "ecsgrpc" {
  source = "../../modules/ecsgrpc"

  name_prefix        = "workflow"
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  cluster_arn        = local.cluster_arn

  agent_image         = var.agent_image
  gateway_image       = var.gateway_image
  ecr_repository_arns = var.ecr_repository_arns

  # The defaults spelled out: they match ecsgrpc's Python defaults.
  cloudmap_namespace    = "workflow.local"
  cloudmap_service_name = "workflow-agent"
  cloudmap_dns_ttl      = 10
  grpc_port             = 50051
  gateway_port          = 8080
  agent_cpu             = 512
  agent_memory          = 1024
  drain_seconds         = 5
  grace_seconds         = 15
  stop_timeout_seconds  = 30

  # Who may call the gateway's HTTP port (e.g. your ALB's security group):
  # with none, nothing can reach it.
  gateway_ingress_security_group_ids = var.gateway_client_security_group_ids
  gateway_target_group_arn           = var.gateway_target_group_arn
  gateway_alb_arn                    = var.gateway_alb_arn

  capacity_provider_strategy = var.capacity_provider_strategy
  agent_min_count            = var.agent_min_count
  agent_max_count            = var.agent_max_count
  wait_for_steady_state      = var.wait_for_steady_state

  enable_nlb                 = var.enable_nlb
  max_connection_age_seconds = var.max_connection_age_seconds
  # Who may call the NLB's listener: security groups and/or CIDRs.
  nlb_client_security_group_ids = var.nlb_client_security_group_ids
  nlb_client_cidr_blocks        = var.nlb_client_cidr_blocks

  # The cluster, with its capacity providers, exists before any service.
  depends_on = [aws_ecs_cluster_capacity_providers.this]
}
