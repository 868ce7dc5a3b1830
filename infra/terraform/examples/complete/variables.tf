# Inputs of the complete example. The VPC and its subnets already exist (DNS
# support and DNS hostnames enabled, private subnets with a NAT gateway or VPC
# endpoints); no account id is written here.

variable "region" {
  description = "AWS region to deploy in."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-west-1."
  }
}

variable "vpc_id" {
  description = "Existing VPC (DNS support and DNS hostnames enabled)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Existing private subnets, one per Availability Zone."
  type        = list(string)
}

variable "agent_image" {
  description = "Image with the ecsgrpc package, e.g. <account>.dkr.ecr.<region>.amazonaws.com/ecsgrpc:<tag>."
  type        = string
}

variable "gateway_image" {
  description = "Image of the API gateway (the same ecsgrpc image works: `ecsgrpc gateway`)."
  type        = string
}

variable "ecr_repository_arns" {
  description = "ECR repositories holding the images (empty for public images)."
  type        = list(string)
  default     = []
}

variable "enable_nlb" {
  description = "Also create the internal NLB for callers without the ecsgrpc client."
  type        = bool
  default     = false
}

variable "max_connection_age_seconds" {
  description = "Agent max connection age; required with the NLB (30 fits the default 60 s deregistration delay)."
  type        = number
  default     = null
}

variable "gateway_client_security_group_ids" {
  description = "Security groups admitted to the gateway's HTTP port (8080), e.g. your ALB's. Required: without one, nothing can reach the gateway."
  type        = list(string)

  validation {
    condition     = length(var.gateway_client_security_group_ids) > 0
    error_message = "gateway_client_security_group_ids must name at least one security group (e.g. your ALB's): the gateway admits no one else."
  }
}

variable "gateway_target_group_arn" {
  description = "Your ALB's target group (target type ip, port 8080) to register the gateway tasks in; null: none."
  type        = string
  default     = null
}

variable "gateway_alb_arn" {
  description = "That ALB's ARN: the gateway then scales on requests per task and a 5xx alarm guards its deployments; null: CPU only."
  type        = string
  default     = null
}

variable "nlb_client_security_group_ids" {
  description = "With enable_nlb: security groups of callers admitted to the NLB's listener (50051)."
  type        = list(string)
  default     = []
}

variable "nlb_client_cidr_blocks" {
  description = "With enable_nlb: caller CIDRs admitted to the NLB's listener (50051), e.g. a peered VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = var.enable_nlb ? length(var.nlb_client_security_group_ids) + length(var.nlb_client_cidr_blocks) > 0 : true
    error_message = "enable_nlb = true needs nlb_client_security_group_ids or nlb_client_cidr_blocks: the NLB admits no caller otherwise."
  }
}

variable "capacity_provider_strategy" {
  description = "Capacity providers of both services; the default keeps one task of each on FARGATE and puts the rest on FARGATE_SPOT 3:1."
  type = list(object({
    capacity_provider = string
    weight            = number
    base              = number
  }))
  default = [
    { capacity_provider = "FARGATE", weight = 1, base = 1 },
    { capacity_provider = "FARGATE_SPOT", weight = 3, base = 0 },
  ]
}

variable "agent_min_count" {
  description = "Fewest agent tasks (autoscaling lower bound)."
  type        = number
  default     = 2
}

variable "agent_max_count" {
  description = "Most agent tasks (autoscaling upper bound)."
  type        = number
  default     = 10
}

variable "wait_for_steady_state" {
  description = "Make terraform apply wait for the services to be steady (new tasks healthy)."
  type        = bool
  default     = true
}
