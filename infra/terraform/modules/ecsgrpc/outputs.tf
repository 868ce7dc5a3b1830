# What a user pastes into the client (WORKFLOW_SERVICE_TARGET or
# ecsgrpc.connect(target)) and what other stacks reference.

output "cloudmap_target" {
  description = "Cloud Map API target (DiscoverInstances; needs the gateway role's servicediscovery permissions)."
  value       = local.cloudmap_target
}

output "dns_target" {
  description = "DNS target over the Cloud Map A records (from inside the VPC; at most 8 healthy records per answer)."
  value       = local.dns_target
}

output "srv_target" {
  description = "DNS SRV target (host and port per record); null unless enable_srv_records."
  value       = local.srv_target
}

output "workflow_service_target" {
  description = "The gateway's WORKFLOW_SERVICE_TARGET: Cloud Map API first, DNS when the API fails."
  value       = local.workflow_service_target
}

output "nlb_dns_name" {
  description = "DNS name of the internal NLB; null when enable_nlb is false."
  value       = var.enable_nlb ? aws_lb.agent[0].dns_name : null
}

output "nlb_target" {
  description = "Target for callers using the NLB (one connection, pinned to one task until its max age); null when enable_nlb is false."
  value       = var.enable_nlb ? "dns:///${aws_lb.agent[0].dns_name}:${var.grpc_port}" : null
}

output "agent_security_group_id" {
  description = "Security group of the agent tasks."
  value       = aws_security_group.agent.id
}

output "gateway_security_group_id" {
  description = "Security group of the gateway tasks."
  value       = aws_security_group.gateway.id
}

output "nlb_security_group_id" {
  description = "Security group of the NLB; null when enable_nlb is false."
  value       = var.enable_nlb ? aws_security_group.nlb[0].id : null
}

output "agent_service_name" {
  description = "ECS service name of the agents (for ecs://CLUSTER/SERVICE targets)."
  value       = aws_ecs_service.agent.name
}

output "gateway_service_name" {
  description = "ECS service name of the gateway."
  value       = aws_ecs_service.gateway.name
}

output "ecs_target" {
  description = "ECS API target (ListTasks + DescribeTasks on this cluster)."
  value       = "ecs://${local.cluster_name}/${aws_ecs_service.agent.name}?port=${var.grpc_port}"
}

output "cloudmap_namespace_id" {
  description = "ID of the Cloud Map private DNS namespace."
  value       = aws_service_discovery_private_dns_namespace.this.id
}

output "cloudmap_service_arn" {
  description = "ARN of the Cloud Map service the agents register in."
  value       = aws_service_discovery_service.agent.arn
}

output "gateway_task_role_arn" {
  description = "Task role of the gateway (Cloud Map discovery and ECS task listing)."
  value       = aws_iam_role.gateway_task.arn
}

output "log_group_names" {
  description = "CloudWatch log groups of the agent and the gateway."
  value = {
    agent   = aws_cloudwatch_log_group.agent.name
    gateway = aws_cloudwatch_log_group.gateway.name
  }
}

output "timings" {
  description = "The shutdown and discovery timings this deployment uses, in seconds (docs/deploy-aws.md)."
  value = {
    cloudmap_dns_ttl         = var.cloudmap_dns_ttl
    drain                    = var.drain_seconds
    grace                    = var.grace_seconds
    stop_timeout             = var.stop_timeout_seconds
    max_connection_age       = var.max_connection_age_seconds
    nlb_deregistration_delay = var.enable_nlb ? var.nlb_deregistration_delay_seconds : null
    nlb_tcp_idle_timeout     = var.enable_nlb ? var.nlb_tcp_idle_timeout_seconds : null
    client_keepalive_assumed = local.client_keepalive_seconds
  }
}
