# One log group per service; the awslogs driver writes to it with the
# execution role (logs:CreateLogStream, logs:PutLogEvents on these groups only).

resource "aws_cloudwatch_log_group" "agent" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default, for cost); raise it where a one-year policy applies.
  name              = "/ecs/${local.agent_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.common_tags
}

resource "aws_cloudwatch_log_group" "gateway" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default, for cost); raise it where a one-year policy applies.
  name              = "/ecs/${local.gateway_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.common_tags
}
