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
