# Inputs for how the services run and scale: capacity providers, autoscaling,
# deployment alarms, and waiting for a deployment to settle.

variable "wait_for_steady_state" {
  description = "Make `terraform apply` wait until both services reach a steady state (their new tasks running and healthy) and fail if they do not, instead of returning as soon as ECS accepts the change."
  type        = bool
  default     = false
}

variable "capacity_provider_strategy" {
  description = "Capacity providers of both services, e.g. [{ capacity_provider = \"FARGATE\", base = 1, weight = 1 }, { capacity_provider = \"FARGATE_SPOT\", weight = 3 }]. Empty: launch type FARGATE. The cluster must have these providers (examples/complete associates both)."
  type = list(object({
    capacity_provider = string
    weight            = number
    base              = number
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.capacity_provider_strategy : contains(["FARGATE", "FARGATE_SPOT"], s.capacity_provider)])
    error_message = "capacity_provider_strategy may name only FARGATE and FARGATE_SPOT (the services are Fargate tasks)."
  }

  validation {
    condition     = length(distinct([for s in var.capacity_provider_strategy : s.capacity_provider])) == length(var.capacity_provider_strategy)
    error_message = "capacity_provider_strategy names a capacity provider twice."
  }

  validation {
    # ECS: weights 0-1000, base 0-100000, at most one provider with a base,
    # and at least one weight above 0 (else no task past the base is placed).
    condition = alltrue([
      for s in var.capacity_provider_strategy :
      s.weight >= 0 && s.weight <= 1000 && floor(s.weight) == s.weight && s.base >= 0 && s.base <= 100000 && floor(s.base) == s.base
      ]) && length([for s in var.capacity_provider_strategy : s if s.base > 0]) <= 1 && (
      length(var.capacity_provider_strategy) == 0 ? true : anytrue([for s in var.capacity_provider_strategy : s.weight > 0])
    )
    error_message = "capacity_provider_strategy: each weight must be a whole number 0-1000 and each base 0-100000, at most one provider may have a base, and at least one weight must be above 0."
  }
}

# --- autoscaling (target tracking) --------------------------------------------
# Application Auto Scaling owns the desired count: the services ignore
# desired_count changes after creation, and a fixed size is min = max.

variable "agent_min_count" {
  description = "Fewest agent tasks autoscaling keeps (2: one task can stop, e.g. Fargate Spot reclaim, while the other serves)."
  type        = number
  default     = 2

  validation {
    condition     = var.agent_min_count >= 1 && floor(var.agent_min_count) == var.agent_min_count
    error_message = "agent_min_count must be a whole number, 1 or more."
  }
}

variable "agent_max_count" {
  description = "Most agent tasks autoscaling may run."
  type        = number
  default     = 10

  validation {
    condition     = var.agent_max_count >= var.agent_min_count && var.agent_max_count <= 1000 && floor(var.agent_max_count) == var.agent_max_count
    error_message = "agent_max_count must be a whole number from agent_min_count to 1000."
  }

  validation {
    condition     = var.agent_desired_count >= var.agent_min_count && var.agent_desired_count <= var.agent_max_count
    error_message = "agent_desired_count (the count at creation) must be from agent_min_count to agent_max_count."
  }
}

variable "gateway_min_count" {
  description = "Fewest gateway tasks autoscaling keeps."
  type        = number
  default     = 2

  validation {
    condition     = var.gateway_min_count >= 1 && floor(var.gateway_min_count) == var.gateway_min_count
    error_message = "gateway_min_count must be a whole number, 1 or more."
  }
}

variable "gateway_max_count" {
  description = "Most gateway tasks autoscaling may run."
  type        = number
  default     = 10

  validation {
    condition     = var.gateway_max_count >= var.gateway_min_count && var.gateway_max_count <= 1000 && floor(var.gateway_max_count) == var.gateway_max_count
    error_message = "gateway_max_count must be a whole number from gateway_min_count to 1000."
  }

  validation {
    condition     = var.gateway_desired_count >= var.gateway_min_count && var.gateway_desired_count <= var.gateway_max_count
    error_message = "gateway_desired_count (the count at creation) must be from gateway_min_count to gateway_max_count."
  }
}

variable "autoscaling_cpu_target_percent" {
  description = "Average CPU utilization (%) each service's CPU target-tracking policy keeps; null: no CPU policy."
  type        = number
  default     = 60

  validation {
    condition     = var.autoscaling_cpu_target_percent == null ? true : var.autoscaling_cpu_target_percent >= 10 && var.autoscaling_cpu_target_percent <= 90
    error_message = "autoscaling_cpu_target_percent must be from 10 to 90 (or null): lower scales on noise, higher leaves no headroom while new tasks start."
  }
}

variable "agent_conversations_per_task_target" {
  description = "In-flight conversations per agent task that the load policy keeps. The agent publishes its in-flight count as the CloudWatch metric ConversationsInFlight (namespace metrics_namespace) through embedded metric format lines in its logs. null: no load policy."
  type        = number
  default     = 20

  validation {
    condition     = var.agent_conversations_per_task_target == null ? true : var.agent_conversations_per_task_target >= 1
    error_message = "agent_conversations_per_task_target must be at least 1, or null."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the agent's own metrics (embedded metric format in its logs)."
  type        = string
  default     = "ecsgrpc"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1-255 letters, digits or . _ / # : - and must not start with AWS/."
  }
}

variable "gateway_alb_arn" {
  description = "ARN of the ALB whose target group is gateway_target_group_arn. With both set, the gateway scales on ALB requests per target and a 5xx alarm guards its deployments."
  type        = string
  default     = null

  validation {
    condition     = var.gateway_alb_arn == null ? true : can(regex("^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:loadbalancer/app/[^/]+/[0-9a-f]+$", var.gateway_alb_arn))
    error_message = "gateway_alb_arn must be an ALB ARN like arn:aws:elasticloadbalancing:REGION:ACCOUNT_ID:loadbalancer/app/NAME/ID, or null."
  }

  validation {
    condition     = var.gateway_alb_arn == null || var.gateway_target_group_arn != null
    error_message = "gateway_alb_arn needs gateway_target_group_arn: the request-count metric is per target group."
  }
}

variable "gateway_requests_per_task_target" {
  description = "ALB requests per gateway task per minute that the load policy keeps (ALBRequestCountPerTarget); used only with gateway_alb_arn. null: no load policy."
  type        = number
  default     = 1000

  validation {
    condition     = var.gateway_requests_per_task_target == null ? true : var.gateway_requests_per_task_target >= 1
    error_message = "gateway_requests_per_task_target must be at least 1, or null."
  }
}

variable "scale_out_cooldown_seconds" {
  description = "Seconds after a scale-out before another scale-out counts its tasks as settled."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_out_cooldown_seconds >= 0 && var.scale_out_cooldown_seconds <= 3600 && floor(var.scale_out_cooldown_seconds) == var.scale_out_cooldown_seconds
    error_message = "scale_out_cooldown_seconds must be a whole number from 0 to 3600."
  }
}

variable "scale_in_cooldown_seconds" {
  description = "Seconds between scale-ins. Must exceed stop_timeout_seconds (and the NLB deregistration delay when enable_nlb), so the tasks of one scale-in have drained and stopped before the next one is decided."
  type        = number
  default     = 300

  validation {
    condition     = var.scale_in_cooldown_seconds <= 3600 && floor(var.scale_in_cooldown_seconds) == var.scale_in_cooldown_seconds
    error_message = "scale_in_cooldown_seconds must be a whole number up to 3600."
  }

  validation {
    condition     = var.scale_in_cooldown_seconds > var.stop_timeout_seconds + (var.enable_nlb ? var.nlb_deregistration_delay_seconds : 0)
    error_message = "scale_in_cooldown_seconds must exceed stop_timeout_seconds (+ nlb_deregistration_delay_seconds with the NLB): a scale-in must not be decided while the last one's tasks are still draining."
  }
}

# --- deployment alarms --------------------------------------------------------

variable "deployment_alarm_cpu_percent" {
  description = "A deployment whose tasks keep average CPU at or above this (%) for 3 minutes trips its alarm and rolls back (with the circuit breaker). null: no CPU alarm."
  type        = number
  default     = 90

  validation {
    condition     = var.deployment_alarm_cpu_percent == null ? true : var.deployment_alarm_cpu_percent > 0 && var.deployment_alarm_cpu_percent <= 100
    error_message = "deployment_alarm_cpu_percent must be above 0 and at most 100, or null."
  }
}

variable "gateway_5xx_alarm_threshold" {
  description = "Gateway 5xx answers per minute (ALB HTTPCode_Target_5XX_Count) that trip the gateway's deployment alarm; used only with gateway_alb_arn."
  type        = number
  default     = 10

  validation {
    condition     = var.gateway_5xx_alarm_threshold >= 1
    error_message = "gateway_5xx_alarm_threshold must be at least 1."
  }
}

variable "agent_deployment_alarm_names" {
  description = "Your own CloudWatch alarms that also roll back an agent deployment."
  type        = list(string)
  default     = []
}

variable "gateway_deployment_alarm_names" {
  description = "Your own CloudWatch alarms that also roll back a gateway deployment."
  type        = list(string)
  default     = []
}
