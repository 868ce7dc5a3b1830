# Inputs of the ecsgrpc module. Defaults mirror the Python defaults in
# src/ecsgrpc/config.py; tests/test_terraform.py fails when they drift apart.

# --- where it runs ---------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every resource name (ECS services, roles, security groups, NLB)."
  type        = string
  default     = "workflow"

  validation {
    # The NLB and its target group names are at most 32 characters:
    # "<prefix>-agent-nlb" must fit.
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-21 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen."
  }
}

variable "vpc_id" {
  description = "VPC of the tasks, the Cloud Map private namespace and the NLB. It must have DNS support and DNS hostnames enabled."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks (and the internal NLB), ideally one per Availability Zone."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) > 0 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "private_subnet_ids must hold at least one id like subnet-0123456789abcdef0."
  }
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster the services run in. Its region and account are used for the IAM conditions (ecs:cluster) and AWS_REGION."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]{1,255}$", var.cluster_arn))
    error_message = "cluster_arn must look like arn:aws:ecs:REGION:ACCOUNT_ID:cluster/NAME."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# --- Cloud Map -------------------------------------------------------------

variable "cloudmap_namespace" {
  description = "Private DNS namespace (ecsgrpc's deployed default target uses workflow.local)."
  type        = string
  default     = "workflow.local"

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.cloudmap_namespace)) && length(var.cloudmap_namespace) <= 253
    error_message = "cloudmap_namespace must be a DNS name such as workflow.local."
  }
}

variable "cloudmap_service_name" {
  description = "Cloud Map service the agent tasks register in (ecsgrpc's deployed default target uses workflow-agent)."
  type        = string
  default     = "workflow-agent"

  validation {
    condition     = can(regex("^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$", var.cloudmap_service_name))
    error_message = "cloudmap_service_name must be one DNS label (letters, digits, hyphens, underscores; at most 63)."
  }
}

variable "cloudmap_dns_ttl" {
  description = "TTL in seconds of the Cloud Map A (and SRV) records. ecsgrpc's dns:/// resolver re-resolves on this TTL; keep it short so a replaced task is seen quickly."
  type        = number
  default     = 10

  validation {
    condition     = var.cloudmap_dns_ttl >= 1 && var.cloudmap_dns_ttl <= 300 && floor(var.cloudmap_dns_ttl) == var.cloudmap_dns_ttl
    error_message = "cloudmap_dns_ttl must be a whole number of seconds from 1 to 300."
  }
}

variable "enable_srv_records" {
  description = "Also create SRV records (same name as the A records, port from the task) for clients that use dns+srv:///."
  type        = bool
  default     = false
}

# --- ports and images -------------------------------------------------------

variable "grpc_port" {
  description = "Port of the agent's gRPC server (GRPC_PORT)."
  type        = number
  default     = 50051

  validation {
    condition     = var.grpc_port >= 1024 && var.grpc_port <= 65535 && floor(var.grpc_port) == var.grpc_port
    error_message = "grpc_port must be a whole number from 1024 to 65535 (the image runs as a non-root user)."
  }
}

variable "gateway_port" {
  description = "Port of the API gateway's HTTP server (serves /healthz)."
  type        = number
  default     = 8080

  validation {
    condition     = var.gateway_port >= 1024 && var.gateway_port <= 65535 && floor(var.gateway_port) == var.gateway_port
    error_message = "gateway_port must be a whole number from 1024 to 65535 (the image runs as a non-root user)."
  }
}

variable "agent_image" {
  description = "Container image of the workflow agent (it must contain the ecsgrpc CLI, used by the health check)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+$", var.agent_image))
    error_message = "agent_image must be an image reference without spaces, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecsgrpc:1.0.0."
  }
}

variable "gateway_image" {
  description = "Container image of the API gateway (it must contain Python, used by the /healthz health check)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+$", var.gateway_image))
    error_message = "gateway_image must be an image reference without spaces."
  }
}

variable "container_entrypoint" {
  description = "entryPoint of both containers. The task definition states it, so ECS runs entryPoint + command whatever ENTRYPOINT the image was built with (deploy/Dockerfile's is the same: [\"ecsgrpc\"])."
  type        = list(string)
  default     = ["ecsgrpc"]

  validation {
    condition     = length(var.container_entrypoint) > 0
    error_message = "container_entrypoint must name a program, e.g. [\"ecsgrpc\"]."
  }
}

variable "agent_command" {
  description = "Command of the agent container: the arguments after container_entrypoint (ECS runs entryPoint + command). Settings come from the environment (GRPC_*)."
  type        = list(string)
  default     = ["agent"]

  validation {
    # ECS's command replaces the image's CMD and keeps the entry point: with
    # entryPoint ["ecsgrpc"], ["ecsgrpc", "agent"] would run
    # `ecsgrpc ecsgrpc agent` and exit 2 at start.
    condition     = length(var.agent_command) > 0 && (length(var.container_entrypoint) == 1 ? var.agent_command[0] != var.container_entrypoint[0] : true)
    error_message = "agent_command must be the arguments after the entry point (e.g. [\"agent\"]): ECS runs entryPoint + command, so repeating the entry point's program runs it twice."
  }
}

variable "gateway_command" {
  description = "Command of the gateway container (after container_entrypoint); null builds [\"gateway\", \"--host\", \"0.0.0.0\", \"--port\", <gateway_port>]. The target comes from WORKFLOW_SERVICE_TARGET."
  type        = list(string)
  default     = null

  validation {
    condition     = var.gateway_command == null ? true : length(var.gateway_command) > 0 && (length(var.container_entrypoint) == 1 ? var.gateway_command[0] != var.container_entrypoint[0] : true)
    error_message = "gateway_command must be the arguments after the entry point (e.g. [\"gateway\", \"--port\", \"8080\"]): ECS runs entryPoint + command, so repeating the entry point's program runs it twice."
  }
}

variable "ecr_repository_arns" {
  description = "ECR repositories the execution role may pull from. Empty: no ECR permissions (public images only)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.ecr_repository_arns : can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", a))])
    error_message = "Each ecr_repository_arns entry must look like arn:aws:ecr:REGION:ACCOUNT_ID:repository/NAME."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the images: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "readonly_root_filesystem" {
  description = "Run both containers with a read-only root filesystem."
  type        = bool
  default     = true
}

variable "agent_environment" {
  description = "Extra environment of the agent container. The module's own variables (GRPC_HOST, GRPC_PORT, GRPC_DRAIN_SECONDS, ...) cannot be overridden here."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(setintersection(keys(var.agent_environment), ["GRPC_HOST", "GRPC_PORT", "GRPC_DRAIN_SECONDS", "GRPC_GRACE_SECONDS", "GRPC_MAX_CONNECTION_AGE_SECONDS", "AGENT_METRICS_NAMESPACE", "AGENT_METRICS_DIMENSIONS"])) == 0
    error_message = "agent_environment must not set GRPC_HOST, GRPC_PORT, GRPC_DRAIN_SECONDS, GRPC_GRACE_SECONDS, GRPC_MAX_CONNECTION_AGE_SECONDS, AGENT_METRICS_NAMESPACE or AGENT_METRICS_DIMENSIONS: use the module's variables."
  }
}

variable "gateway_environment" {
  description = "Extra environment of the gateway container. WORKFLOW_SERVICE_TARGET and AWS_REGION are set by the module."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(setintersection(keys(var.gateway_environment), ["WORKFLOW_SERVICE_TARGET", "AWS_REGION"])) == 0
    error_message = "gateway_environment must not set WORKFLOW_SERVICE_TARGET or AWS_REGION: the module builds them from its own Cloud Map names."
  }
}

# --- sizes ------------------------------------------------------------------

variable "agent_cpu" {
  description = "Fargate CPU units of the agent task."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.agent_cpu)
    error_message = "agent_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "agent_memory" {
  description = "Memory (MiB) of the agent task; must be a Fargate pairing with agent_cpu (256: 512/1024/2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384 in 1024 steps; 4096: 8192-30720 in 1024 steps; 8192: 16384-61440 in 4096 steps; 16384: 32768-122880 in 8192 steps)."
  type        = number
  default     = 1024

  validation {
    # The Fargate task size table: a pair outside it plans, then fails at apply.
    condition = (
      var.agent_cpu == 256 ? contains([512, 1024, 2048], var.agent_memory) :
      var.agent_cpu == 512 ? var.agent_memory >= 1024 && var.agent_memory <= 4096 && var.agent_memory % 1024 == 0 :
      var.agent_cpu == 1024 ? var.agent_memory >= 2048 && var.agent_memory <= 8192 && var.agent_memory % 1024 == 0 :
      var.agent_cpu == 2048 ? var.agent_memory >= 4096 && var.agent_memory <= 16384 && var.agent_memory % 1024 == 0 :
      var.agent_cpu == 4096 ? var.agent_memory >= 8192 && var.agent_memory <= 30720 && var.agent_memory % 1024 == 0 :
      var.agent_cpu == 8192 ? var.agent_memory >= 16384 && var.agent_memory <= 61440 && var.agent_memory % 4096 == 0 :
      var.agent_cpu == 16384 ? var.agent_memory >= 32768 && var.agent_memory <= 122880 && var.agent_memory % 8192 == 0 :
      false
    )
    error_message = "agent_memory is not a Fargate size for agent_cpu (256 CPU: 512, 1024 or 2048 MiB; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720, in 1024 MiB steps; 8192: 16384-61440 in 4096 steps; 16384: 32768-122880 in 8192 steps)."
  }
}

variable "gateway_cpu" {
  description = "Fargate CPU units of the gateway task."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.gateway_cpu)
    error_message = "gateway_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "gateway_memory" {
  description = "Memory (MiB) of the gateway task; must be a Fargate pairing with gateway_cpu (256: 512/1024/2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384 in 1024 steps; 4096: 8192-30720 in 1024 steps; 8192: 16384-61440 in 4096 steps; 16384: 32768-122880 in 8192 steps)."
  type        = number
  default     = 1024

  validation {
    # The Fargate task size table: a pair outside it plans, then fails at apply.
    condition = (
      var.gateway_cpu == 256 ? contains([512, 1024, 2048], var.gateway_memory) :
      var.gateway_cpu == 512 ? var.gateway_memory >= 1024 && var.gateway_memory <= 4096 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 1024 ? var.gateway_memory >= 2048 && var.gateway_memory <= 8192 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 2048 ? var.gateway_memory >= 4096 && var.gateway_memory <= 16384 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 4096 ? var.gateway_memory >= 8192 && var.gateway_memory <= 30720 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 8192 ? var.gateway_memory >= 16384 && var.gateway_memory <= 61440 && var.gateway_memory % 4096 == 0 :
      var.gateway_cpu == 16384 ? var.gateway_memory >= 32768 && var.gateway_memory <= 122880 && var.gateway_memory % 8192 == 0 :
      false
    )
    error_message = "gateway_memory is not a Fargate size for gateway_cpu (256 CPU: 512, 1024 or 2048 MiB; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720, in 1024 MiB steps; 8192: 16384-61440 in 4096 steps; 16384: 32768-122880 in 8192 steps)."
  }
}

variable "agent_desired_count" {
  description = "Number of agent tasks."
  type        = number
  default     = 2

  validation {
    condition     = var.agent_desired_count >= 0 && floor(var.agent_desired_count) == var.agent_desired_count
    error_message = "agent_desired_count must be a whole number, 0 or more."
  }
}

variable "gateway_desired_count" {
  description = "Number of gateway tasks."
  type        = number
  default     = 2

  validation {
    condition     = var.gateway_desired_count >= 0 && floor(var.gateway_desired_count) == var.gateway_desired_count
    error_message = "gateway_desired_count must be a whole number, 0 or more."
  }
}

# --- shutdown timings (see docs/deploy-aws.md, "How the timings fit") ---------

variable "drain_seconds" {
  description = "GRPC_DRAIN_SECONDS: after SIGTERM the agent keeps serving while reporting NOT_SERVING, so clients move away."
  type        = number
  default     = 5

  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 300
    error_message = "drain_seconds must be from 0 to 300."
  }
}

variable "grace_seconds" {
  description = "GRPC_GRACE_SECONDS: after the drain, time for in-flight calls (streams) to finish before they are cancelled."
  type        = number
  default     = 15

  validation {
    condition     = var.grace_seconds >= 0 && var.grace_seconds <= 300
    error_message = "grace_seconds must be from 0 to 300."
  }
}

variable "stop_timeout_seconds" {
  description = "Container stopTimeout: ECS sends SIGKILL this long after SIGTERM. Must exceed drain + grace + a 5 s margin (Fargate allows at most 120)."
  type        = number
  default     = 30

  validation {
    condition     = var.stop_timeout_seconds >= 2 && var.stop_timeout_seconds <= 120 && floor(var.stop_timeout_seconds) == var.stop_timeout_seconds
    error_message = "stop_timeout_seconds must be a whole number from 2 to 120 (the Fargate maximum)."
  }

  validation {
    # The margin covers process start-up of the signal handler, log flushing
    # and the scheduler's own latency; without it SIGKILL can land while the
    # last in-flight call is completing.
    condition     = var.drain_seconds + var.grace_seconds + 5 < var.stop_timeout_seconds
    error_message = "drain_seconds + grace_seconds + 5 s margin must be less than stop_timeout_seconds, or ECS kills the agent before in-flight calls finish."
  }
}

variable "max_connection_age_seconds" {
  description = "GRPC_MAX_CONNECTION_AGE_SECONDS (gRFC A9): the agent closes each connection after this age (with grace_seconds for in-flight calls), so clients behind an L4 balancer reconnect and spread out. null: not set. Required when enable_nlb."
  type        = number
  default     = null

  validation {
    condition     = var.max_connection_age_seconds == null ? true : var.max_connection_age_seconds >= 1
    error_message = "max_connection_age_seconds must be at least 1 second, or null."
  }

  validation {
    # An L4 balancer pins long-lived HTTP/2 connections: without a max age an
    # NLB client keeps all its calls on one task for the connection's life.
    condition     = var.enable_nlb ? var.max_connection_age_seconds != null : true
    error_message = "enable_nlb = true needs max_connection_age_seconds (e.g. 30): an NLB pins each long-lived HTTP/2 connection to one task, and the max age is what makes its clients reconnect and rebalance."
  }

  validation {
    # During the NLB deregistration delay the target still serves existing
    # connections; each must reach its max age (+10 % jitter) and finish its
    # calls (grace) before the NLB terminates what is left.
    condition     = var.enable_nlb && var.max_connection_age_seconds != null ? var.max_connection_age_seconds * 1.1 + var.grace_seconds <= var.nlb_deregistration_delay_seconds : true
    error_message = "max_connection_age_seconds * 1.1 + grace_seconds must not exceed nlb_deregistration_delay_seconds, or the NLB cuts connections that have not yet been told to go away."
  }
}

# --- logs -------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key ARN that encrypts the log groups. null: CloudWatch Logs' own encryption."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null ? true : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must look like arn:aws:kms:REGION:ACCOUNT_ID:key/ID, or be null."
  }
}

# --- access -----------------------------------------------------------------

variable "enable_execute_command" {
  description = "Allow ECS Exec into the tasks (adds the ssmmessages permissions to both task roles). Needs readonly_root_filesystem = false: the SSM agent ECS Exec starts in the container writes to its filesystem."
  type        = bool
  default     = false

  validation {
    # AWS documents that ECS Exec does not work with readonlyRootFilesystem:
    # the task starts, and every `aws ecs execute-command` then fails.
    condition     = var.enable_execute_command ? !var.readonly_root_filesystem : true
    error_message = "enable_execute_command = true needs readonly_root_filesystem = false: ECS Exec's SSM agent cannot start in a read-only container filesystem, so the sessions would fail."
  }
}

variable "aws_api_egress_cidr_blocks" {
  description = "Where tasks may open HTTPS (443) for AWS APIs: ECR image pulls, CloudWatch Logs, and the gateway's Cloud Map and ECS discovery calls. Default: anywhere (through a NAT gateway). With VPC interface endpoints, narrow it to the VPC CIDR."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.aws_api_egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "Each aws_api_egress_cidr_blocks entry must be an IPv4 CIDR such as 10.0.0.0/16."
  }
}

variable "aws_api_egress_prefix_list_ids" {
  description = "Managed prefix lists tasks may open HTTPS (443) to, e.g. the S3 gateway endpoint's list (ECR stores image layers in S3)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.aws_api_egress_prefix_list_ids : can(regex("^pl-[0-9a-f]{8,17}$", p))])
    error_message = "Each aws_api_egress_prefix_list_ids entry must look like pl-0123456789abcdef0."
  }
}

variable "gateway_ingress_security_group_ids" {
  description = "Security groups (e.g. of an ALB) admitted to the gateway's HTTP port."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.gateway_ingress_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "Each gateway_ingress_security_group_ids entry must look like sg-0123456789abcdef0."
  }
}

variable "gateway_target_group_arn" {
  description = "Optional existing (ALB) target group to register the gateway tasks in, on gateway_port."
  type        = string
  default     = null
}

# --- optional internal NLB --------------------------------------------------

variable "enable_nlb" {
  description = "Create an internal NLB in front of the agents, for callers that cannot run the ecsgrpc client. Off by default: the client balances per call over Cloud Map."
  type        = bool
  default     = false
}

variable "nlb_deregistration_delay_seconds" {
  description = "How long a deregistering agent keeps its existing NLB connections. ECS waits this long before sending SIGTERM; then the NLB terminates what is left (connection_termination)."
  type        = number
  default     = 60

  validation {
    condition     = var.nlb_deregistration_delay_seconds >= 0 && var.nlb_deregistration_delay_seconds <= 3600 && floor(var.nlb_deregistration_delay_seconds) == var.nlb_deregistration_delay_seconds
    error_message = "nlb_deregistration_delay_seconds must be a whole number from 0 to 3600."
  }
}

variable "nlb_tcp_idle_timeout_seconds" {
  description = "TCP idle timeout of the NLB listener (AWS default 350). ecsgrpc clients send keepalive pings every 60 s, well inside it."
  type        = number
  default     = 350

  validation {
    condition     = var.nlb_tcp_idle_timeout_seconds >= 60 && var.nlb_tcp_idle_timeout_seconds <= 6000 && floor(var.nlb_tcp_idle_timeout_seconds) == var.nlb_tcp_idle_timeout_seconds
    error_message = "nlb_tcp_idle_timeout_seconds must be a whole number from 60 to 6000."
  }
}

variable "nlb_cross_zone_enabled" {
  description = "Cross-zone load balancing on the NLB (spreads connections over every zone's agents; inter-AZ data is billed)."
  type        = bool
  default     = true
}

variable "nlb_deletion_protection" {
  description = "Deletion protection on the NLB."
  type        = bool
  default     = false
}

variable "nlb_client_security_group_ids" {
  description = "Security groups of callers admitted to the NLB's listener."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.nlb_client_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "Each nlb_client_security_group_ids entry must look like sg-0123456789abcdef0."
  }
}

variable "nlb_client_cidr_blocks" {
  description = "Caller CIDRs admitted to the NLB's listener (e.g. a peered VPC). The agents themselves never admit a CIDR: only the gateway's and the NLB's security groups."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.nlb_client_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "Each nlb_client_cidr_blocks entry must be an IPv4 CIDR such as 10.1.0.0/16."
  }
}

# --- xDS control plane (xds.tf, docs/xds.md) -------------------------------------

variable "enable_xds_control_plane" {
  description = "Run the xDS control plane (ecsgrpc xds serve) as its own ECS service, so gRPC clients in any language can call xds:///<cloudmap_service_name>."
  type        = bool
  default     = false
}

variable "gateway_uses_xds" {
  description = "The gateway calls the agents through gRPC's own xDS client (xds:///) fed by the control plane, instead of ecsgrpc.connect(). Needs enable_xds_control_plane."
  type        = bool
  default     = false

  validation {
    condition     = !var.gateway_uses_xds || var.enable_xds_control_plane
    error_message = "gateway_uses_xds needs enable_xds_control_plane = true."
  }
}

variable "xds_image" {
  description = "Image of the control plane (needs ecsgrpc[xds]); default: gateway_image."
  type        = string
  default     = null
}

variable "xds_desired_count" {
  description = "Control plane replicas (clients reconnect to another when one stops)."
  type        = number
  default     = 2

  validation {
    condition     = var.xds_desired_count >= 1 && floor(var.xds_desired_count) == var.xds_desired_count
    error_message = "xds_desired_count must be a whole number of at least 1."
  }
}

variable "xds_port" {
  description = "The control plane's ADS port."
  type        = number
  default     = 18000

  validation {
    condition     = var.xds_port >= 1 && var.xds_port <= 65535 && floor(var.xds_port) == var.xds_port
    error_message = "xds_port must be a whole number from 1 to 65535."
  }
}

variable "xds_poll_seconds" {
  description = "How often the control plane polls Cloud Map (once for every client)."
  type        = number
  default     = 5

  validation {
    condition     = var.xds_poll_seconds >= 0.5 && var.xds_poll_seconds <= 300
    error_message = "xds_poll_seconds must be from 0.5 to 300."
  }
}

variable "xds_cpu" {
  description = "Fargate CPU units of a control plane task."
  type        = number
  default     = 256
}

variable "xds_memory" {
  description = "Fargate memory (MiB) of a control plane task."
  type        = number
  default     = 512
}

variable "xds_cloudmap_service_name" {
  description = "Cloud Map name of the control plane replicas (clients use <name>.<cloudmap_namespace>:<xds_port>)."
  type        = string
  default     = "xds"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.xds_cloudmap_service_name))
    error_message = "xds_cloudmap_service_name must be a DNS label (lowercase letters, digits, '-')."
  }
}

variable "xds_client_security_group_ids" {
  description = "Security groups of further xDS clients (services in any language) admitted to the control plane; the gateway's is always admitted."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.xds_client_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "Each xds_client_security_group_ids entry must look like sg-0123456789abcdef0."
  }
}
