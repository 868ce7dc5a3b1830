# Cloud Map: a private DNS namespace (a Route 53 private hosted zone in the
# VPC) and the agent's service. ECS registers each agent task (its ENI's IPv4)
# and reports the container health check as the instance's custom health.

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.cloudmap_namespace
  description = "ecsgrpc service discovery (${var.name_prefix})"
  vpc         = var.vpc_id
  tags        = local.common_tags
}

resource "aws_service_discovery_service" "agent" {
  name = var.cloudmap_service_name
  # The service's namespace at the top level (the API's NamespaceId;
  # dns_config's copy is the older form, kept because the provider needs it).
  namespace_id = aws_service_discovery_private_dns_namespace.this.id
  description  = "Workflow agent gRPC tasks (port ${var.grpc_port})"

  dns_config {
    namespace_id = aws_service_discovery_private_dns_namespace.this.id
    # MULTIVALUE: Route 53 answers with up to 8 healthy records; ecsgrpc's
    # dns:/// resolver uses them all, the cloudmap:// resolver sees every task.
    routing_policy = "MULTIVALUE"

    # A always (awsvpc: one IPv4 per task); SRV optionally. With awsvpc ECS
    # accepts any combination of A and SRV records; SRV needs a port, given
    # in the service's service_registries block.
    dynamic "dns_records" {
      for_each = local.dns_record_types
      content {
        type = dns_records.value
        ttl  = var.cloudmap_dns_ttl
      }
    }
  }

  # Health comes from ECS (the container health check), not Route 53 checks.
  # AWS treats failure_threshold as 1 whatever is sent; it is set explicitly.
  health_check_custom_config {
    failure_threshold = 1
  }

  tags = local.common_tags
}
