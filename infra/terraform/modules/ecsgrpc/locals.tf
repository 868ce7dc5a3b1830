locals {
  # Region, account and partition come from the cluster ARN: no data source,
  # so the module reads the same on AWS provider 5.x and 6.x.
  arn_parts    = split(":", var.cluster_arn)
  partition    = local.arn_parts[1]
  region       = local.arn_parts[3]
  account_id   = local.arn_parts[4]
  cluster_name = split("/", local.arn_parts[5])[1]

  agent_name   = "${var.name_prefix}-agent"
  gateway_name = "${var.name_prefix}-gateway"

  # The client's targets, built from this module's own Cloud Map names so the
  # gateway can never point at a namespace or service that does not exist.
  # Same shape as ecsgrpc's deployed default:
  #   cloudmap://workflow.local/workflow-agent?port=50051|dns:///workflow-agent.workflow.local:50051
  # The port is in the Cloud Map target: with A records only (no SRV), ECS
  # registers each task without AWS_INSTANCE_PORT.
  agent_fqdn              = "${var.cloudmap_service_name}.${var.cloudmap_namespace}"
  cloudmap_target         = "cloudmap://${var.cloudmap_namespace}/${var.cloudmap_service_name}?port=${var.grpc_port}"
  dns_target              = "dns:///${local.agent_fqdn}:${var.grpc_port}"
  srv_target              = var.enable_srv_records ? "dns+srv:///${local.agent_fqdn}" : null
  workflow_service_target = "${local.cloudmap_target}|${local.dns_target}"

  # ecsgrpc.config.DEFAULT_CLIENT_KEEPALIVE_SECONDS: clients ping every 60 s,
  # below the NLB's TCP idle timeout (checked by a precondition in nlb.tf).
  client_keepalive_seconds = 60

  dns_record_types = var.enable_srv_records ? ["A", "SRV"] : ["A"]

  # The arguments after the entry point (ECS runs entryPoint + command).
  gateway_command = var.gateway_command != null ? var.gateway_command : [
    "gateway", "--host", "0.0.0.0", "--port", tostring(var.gateway_port),
  ]

  # The agent's in-flight conversations, published by the agent itself as
  # CloudWatch embedded metric format lines (autoscaling.tf scales on it).
  agent_metric_name = "ConversationsInFlight"

  # Seconds are passed as strings: container environment values are strings.
  agent_environment = merge(
    var.agent_environment,
    {
      GRPC_HOST          = "0.0.0.0"
      GRPC_PORT          = tostring(var.grpc_port)
      GRPC_DRAIN_SECONDS = tostring(var.drain_seconds)
      GRPC_GRACE_SECONDS = tostring(var.grace_seconds)
      GRPC_LOG_JSON      = "true"
    },
    var.agent_conversations_per_task_target == null ? {} : {
      AGENT_METRICS_NAMESPACE  = var.metrics_namespace
      AGENT_METRICS_DIMENSIONS = "ClusterName=${local.cluster_name},ServiceName=${local.agent_name}"
    },
    var.max_connection_age_seconds == null ? {} : {
      GRPC_MAX_CONNECTION_AGE_SECONDS = tostring(var.max_connection_age_seconds)
    },
  )

  gateway_environment = merge(
    var.gateway_environment,
    {
      WORKFLOW_SERVICE_TARGET = local.workflow_service_target
      AWS_REGION              = local.region
    },
    local.gateway_xds_environment, # xds.tf: xds:/// when gateway_uses_xds
  )

  # Container health checks. ECS reports them to Cloud Map (custom health
  # config), so an unhealthy agent leaves DNS and DiscoverInstances answers.
  agent_health_command = [
    "CMD", "ecsgrpc", "probe", "127.0.0.1:${var.grpc_port}", "--timeout", "2",
  ]
  # The image has Python but no curl: urlopen raises (exit 1) on any non-2xx.
  gateway_health_command = [
    "CMD", "python", "-c",
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${var.gateway_port}/healthz', timeout=2)",
  ]

  common_tags = merge(var.tags, { "ecsgrpc:module" = "ecsgrpc" })
}
