terraform {
  # 1.9: validation blocks may refer to other input variables
  # (drain + grace + margin < stop_timeout, max connection age vs. the NLB
  # deregistration delay).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.91: aws_lb_listener.tcp_idle_timeout_seconds; NLB security groups and
      # aws_vpc_security_group_*_rule are older. Tested against the 5.x and 6.x
      # argument references (no provider binary was available to plan with).
      version = ">= 5.91.0, < 7.0.0"
    }
  }
}
