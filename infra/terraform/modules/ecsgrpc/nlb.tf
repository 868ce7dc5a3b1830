# Optional internal NLB (enable_nlb) for callers that cannot run the ecsgrpc
# client. Trade-off (docs/deploy-aws.md): an NLB balances TCP connections,
# not calls. A gRPC client keeps one long-lived HTTP/2 connection, so all its
# calls stay on one task until that connection closes. The agent's max
# connection age (GRPC_MAX_CONNECTION_AGE_SECONDS, required when the NLB is
# on) makes clients reconnect periodically, and each reconnect is balanced.

resource "aws_lb" "agent" {
  count = var.enable_nlb ? 1 : 0

  name                             = "${var.name_prefix}-agent-nlb"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = var.private_subnet_ids
  security_groups                  = [aws_security_group.nlb[0].id]
  enable_cross_zone_load_balancing = var.nlb_cross_zone_enabled
  enable_deletion_protection       = var.nlb_deletion_protection
  tags                             = local.common_tags
}

resource "aws_lb_target_group" "agent" {
  count = var.enable_nlb ? 1 : 0

  name        = "${var.name_prefix}-agent-grpc"
  port        = var.grpc_port
  protocol    = "TCP"
  target_type = "ip" # awsvpc tasks register their ENI address
  vpc_id      = var.vpc_id

  # Traffic arrives from the NLB's addresses, so the agent's security group
  # admits the NLB's security group rather than every possible caller.
  preserve_client_ip = false

  # ECS waits this long after deregistering a task before it sends SIGTERM;
  # then the NLB resets the connections that are left (connection_termination)
  # instead of letting them hang on a stopped task.
  deregistration_delay   = var.nlb_deregistration_delay_seconds
  connection_termination = true

  # A TCP health check: the NLB opens a connection to the gRPC port. No
  # `matcher` (HTTP/gRPC codes only; invalid for a TCP check) and no `path`.
  # Deep health (grpc.health.v1) is the container health check in ecs.tf.
  health_check {
    enabled             = true
    protocol            = "TCP"
    port                = "traffic-port"
    interval            = 10 # seconds; 2 failures (20 s) mark a target unhealthy
    timeout             = 5  # kept below the interval
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.common_tags
}

resource "aws_lb_listener" "agent" {
  count = var.enable_nlb ? 1 : 0

  load_balancer_arn = aws_lb.agent[0].arn
  port              = var.grpc_port
  protocol          = "TCP"

  # Idle connections are closed silently after this; ecsgrpc clients ping
  # every 60 s (DEFAULT_CLIENT_KEEPALIVE_SECONDS) so theirs stay open.
  tcp_idle_timeout_seconds = var.nlb_tcp_idle_timeout_seconds

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.agent[0].arn
  }

  lifecycle {
    precondition {
      condition     = var.nlb_tcp_idle_timeout_seconds > local.client_keepalive_seconds
      error_message = "nlb_tcp_idle_timeout_seconds must exceed the client keepalive interval (60 s), or the NLB drops idle gRPC connections without notice."
    }
  }

  tags = local.common_tags
}
