output "workflow_service_target" {
  description = "Paste into WORKFLOW_SERVICE_TARGET (already set on the gateway)."
  value       = module.ecsgrpc.workflow_service_target
}

output "cloudmap_target" {
  description = "Cloud Map API target."
  value       = module.ecsgrpc.cloudmap_target
}

output "dns_target" {
  description = "DNS target (inside the VPC)."
  value       = module.ecsgrpc.dns_target
}

output "nlb_dns_name" {
  description = "Internal NLB DNS name, or null."
  value       = module.ecsgrpc.nlb_dns_name
}

output "agent_security_group_id" {
  description = "Security group of the agents."
  value       = module.ecsgrpc.agent_security_group_id
}

output "gateway_security_group_id" {
  description = "Security group of the gateway."
  value       = module.ecsgrpc.gateway_security_group_id
}

output "timings" {
  description = "Shutdown and discovery timings in use."
  value       = module.ecsgrpc.timings
}
