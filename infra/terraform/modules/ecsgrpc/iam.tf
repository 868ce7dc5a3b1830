# IAM: one execution role (image pull, logs) and one least-privilege task role
# per service. IAM names are global to the account, so the role names carry
# the region: the module applied in two regions of one account does not
# collide. Every policy is written with jsonencode so tests can parse the
# documents and reject wildcard actions. No action anywhere ends in "*".

locals {
  # Only ECS tasks of this account and region may assume the roles
  # (confused-deputy protection).
  ecs_tasks_trust_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EcsTasksAssume"
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
      }
    }]
  })

  # Optional statements are filtered with `for ... if` rather than chosen with
  # `cond ? [...] : []`: a conditional must unify its two tuple types, which
  # fails for statements of different shapes.

  # ECS Exec: the four ssmmessages actions, which take no resource ARN.
  exec_command_statements = [for s in [{
    Sid    = "EcsExec"
    Effect = "Allow"
    Action = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    Resource = "*"
  }] : s if var.enable_execute_command]

  ecr_statements = [for s in [
    {
      # GetAuthorizationToken is account-wide: it supports no resource ARN.
      Sid      = "EcrAuth"
      Effect   = "Allow"
      Action   = ["ecr:GetAuthorizationToken"]
      Resource = "*"
    },
    {
      Sid    = "EcrPull"
      Effect = "Allow"
      Action = [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
      ]
      Resource = var.ecr_repository_arns
    },
  ] : s if length(var.ecr_repository_arns) > 0]

  execution_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.ecr_statements, [{
      Sid    = "WriteOwnLogs"
      Effect = "Allow"
      Action = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = [
        "${aws_cloudwatch_log_group.agent.arn}:*",
        "${aws_cloudwatch_log_group.gateway.arn}:*",
      ]
    }])
  })

  gateway_task_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        # cloudmap:// route. These actions take no resource ARN, so Resource
        # is "*"; the condition keys AWS defines for them
        # (servicediscovery:NamespaceName, servicediscovery:ServiceName) limit
        # them to this module's namespace and service.
        Sid      = "CloudMapDiscoverAgents"
        Effect   = "Allow"
        Action   = ["servicediscovery:DiscoverInstances", "servicediscovery:DiscoverInstancesRevision"]
        Resource = "*"
        Condition = {
          StringEquals = {
            "servicediscovery:NamespaceName" = var.cloudmap_namespace
            "servicediscovery:ServiceName"   = var.cloudmap_service_name
          }
        }
      },
      {
        # ecs:// route: list the agent tasks of this cluster only.
        Sid       = "EcsListTasksInCluster"
        Effect    = "Allow"
        Action    = ["ecs:ListTasks"]
        Resource  = "*"
        Condition = { ArnEquals = { "ecs:cluster" = var.cluster_arn } }
      },
      {
        Sid       = "EcsDescribeTasksInCluster"
        Effect    = "Allow"
        Action    = ["ecs:DescribeTasks"]
        Resource  = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"
        Condition = { ArnEquals = { "ecs:cluster" = var.cluster_arn } }
      },
    ], local.exec_command_statements)
  })
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-ecs-execution-${local.region}"
  description        = "Pulls the ecsgrpc images and writes their logs."
  assume_role_policy = local.ecs_tasks_trust_policy
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.execution.id
  policy = local.execution_policy
}

resource "aws_iam_role" "agent_task" {
  name               = "${local.agent_name}-task-${local.region}"
  description        = "Workflow agent: calls no AWS API (ECS Exec only when enabled)."
  assume_role_policy = local.ecs_tasks_trust_policy
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "agent_task" {
  count = var.enable_execute_command ? 1 : 0
  name  = "ecs-exec"
  role  = aws_iam_role.agent_task.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.exec_command_statements
  })
}

resource "aws_iam_role" "gateway_task" {
  name               = "${local.gateway_name}-task-${local.region}"
  description        = "API gateway: discovers the agents through Cloud Map and the ECS API."
  assume_role_policy = local.ecs_tasks_trust_policy
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "gateway_task" {
  name   = "discover-agents"
  role   = aws_iam_role.gateway_task.id
  policy = local.gateway_task_policy
}
