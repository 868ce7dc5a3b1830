# A cluster plus the ecsgrpc module: Cloud Map namespace and service, the
# agent and gateway services, their roles, security groups and logs.

resource "aws_ecs_cluster" "this" {
  name = "ecsgrpc-example"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

module "ecsgrpc" {
  source = "../../modules/ecsgrpc"

  name_prefix        = "workflow"
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  cluster_arn        = aws_ecs_cluster.this.arn

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

  enable_nlb                 = var.enable_nlb
  max_connection_age_seconds = var.max_connection_age_seconds
}
