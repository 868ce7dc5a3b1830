# Security groups. The agent admits its gRPC port only from the gateway's
# security group (and the NLB's, when enabled): never from a CIDR, so a new
# workload in the VPC cannot reach the agents by accident (the seed admitted
# the whole VPC CIDR). Rules are separate aws_vpc_security_group_*_rule
# resources, each with a description.
#
# DNS needs no rule: traffic to the Amazon-provided VPC resolver is not
# filtered by security groups.

resource "aws_security_group" "agent" {
  name        = "${local.agent_name}-sg"
  description = "Workflow agent tasks: gRPC ${var.grpc_port} from the gateway (and NLB) only"
  vpc_id      = var.vpc_id
  tags        = merge(local.common_tags, { Name = "${local.agent_name}-sg" })
}

resource "aws_security_group" "gateway" {
  name        = "${local.gateway_name}-sg"
  description = "API gateway tasks: HTTP ${var.gateway_port} in, gRPC to the agents out"
  vpc_id      = var.vpc_id
  tags        = merge(local.common_tags, { Name = "${local.gateway_name}-sg" })
}

# --- agent ------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "agent_from_gateway" {
  security_group_id            = aws_security_group.agent.id
  description                  = "gRPC from the API gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = aws_security_group.gateway.id
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_ingress_rule" "agent_from_nlb" {
  count = var.enable_nlb ? 1 : 0

  # The NLB does not preserve client IPs for ip targets (preserve_client_ip =
  # false in nlb.tf): traffic and health checks arrive from the NLB's own
  # addresses, so its security group is the source to admit.
  security_group_id            = aws_security_group.agent.id
  description                  = "gRPC and health checks from the internal NLB"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = aws_security_group.nlb[0].id
  tags                         = local.common_tags
}

# --- gateway ----------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "gateway_from_clients" {
  for_each = toset(var.gateway_ingress_security_group_ids)

  security_group_id            = aws_security_group.gateway.id
  description                  = "HTTP from an allowed client security group"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = each.value
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_agent" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "gRPC to the workflow agent tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = aws_security_group.agent.id
  tags                         = local.common_tags
}

# --- HTTPS to AWS APIs (both services) ----------------------------------------
# Why: on Fargate the image pull (ECR, and S3 for its layers) and the awslogs
# driver use the task's ENI, so the task's security group must let them out;
# the gateway also calls Cloud Map DiscoverInstances and ECS ListTasks/
# DescribeTasks. Without VPC endpoints these are public AWS endpoints reached
# through NAT, whose addresses are not fixed: hence a CIDR (default anywhere,
# port 443 only). With interface endpoints, narrow aws_api_egress_cidr_blocks
# to the VPC CIDR; for the S3 gateway endpoint add its prefix list.

locals {
  https_egress_cidrs = {
    for pair in setproduct(["agent", "gateway"], var.aws_api_egress_cidr_blocks) :
    "${pair[0]}:${pair[1]}" => { service = pair[0], cidr = pair[1] }
  }
  https_egress_prefix_lists = {
    for pair in setproduct(["agent", "gateway"], var.aws_api_egress_prefix_list_ids) :
    "${pair[0]}:${pair[1]}" => { service = pair[0], prefix_list = pair[1] }
  }
  service_security_group_ids = {
    agent   = aws_security_group.agent.id
    gateway = aws_security_group.gateway.id
  }
}

resource "aws_vpc_security_group_egress_rule" "https_to_aws_apis" {
  for_each = local.https_egress_cidrs

  security_group_id = local.service_security_group_ids[each.value.service]
  description       = "HTTPS to AWS APIs (ECR, CloudWatch Logs, Cloud Map, ECS)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value.cidr
  tags              = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "https_to_prefix_lists" {
  for_each = local.https_egress_prefix_lists

  security_group_id = local.service_security_group_ids[each.value.service]
  description       = "HTTPS to AWS endpoints of a managed prefix list (e.g. S3 for ECR layers)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value.prefix_list
  tags              = local.common_tags
}

# --- NLB (optional) -----------------------------------------------------------
# NLBs take security groups (set at creation). Callers reach the listener;
# the NLB reaches the agents.

resource "aws_security_group" "nlb" {
  count = var.enable_nlb ? 1 : 0

  name        = "${var.name_prefix}-agent-nlb-sg"
  description = "Internal NLB in front of the workflow agents"
  vpc_id      = var.vpc_id
  tags        = merge(local.common_tags, { Name = "${var.name_prefix}-agent-nlb-sg" })
}

resource "aws_vpc_security_group_ingress_rule" "nlb_from_client_sgs" {
  for_each = var.enable_nlb ? toset(var.nlb_client_security_group_ids) : toset([])

  security_group_id            = aws_security_group.nlb[0].id
  description                  = "gRPC from an allowed caller security group"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = each.value
  tags                         = local.common_tags
}

resource "aws_vpc_security_group_ingress_rule" "nlb_from_client_cidrs" {
  for_each = var.enable_nlb ? toset(var.nlb_client_cidr_blocks) : toset([])

  security_group_id = aws_security_group.nlb[0].id
  description       = "gRPC from an allowed caller network"
  ip_protocol       = "tcp"
  from_port         = var.grpc_port
  to_port           = var.grpc_port
  cidr_ipv4         = each.value
  tags              = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_agent" {
  count = var.enable_nlb ? 1 : 0

  security_group_id            = aws_security_group.nlb[0].id
  description                  = "gRPC and health checks to the workflow agent tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = aws_security_group.agent.id
  tags                         = local.common_tags
}
