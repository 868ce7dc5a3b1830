"""The library's default timings and ports, in one small module (no imports):
the client reads them without loading the settings reader."""

__all__ = [
    "DEFAULT_CLIENT_KEEPALIVE_SECONDS",
    "DEFAULT_DRAIN_SECONDS",
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_GRPC_PORT",
    "DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS",
    "NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS",
]

DEFAULT_GRPC_PORT = 50051
# drain + grace must stay well inside ECS's stopTimeout (default 30 s): 5 + 15 = 20 s.
DEFAULT_DRAIN_SECONDS = 5.0
DEFAULT_GRACE_SECONDS = 15.0
# Client keepalive (sent every 60 s) must be allowed by the server and stay
# below the NLB's 350 s idle timeout.
DEFAULT_CLIENT_KEEPALIVE_SECONDS = 60.0
DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS = 30.0
# AWS's default TCP idle timeout of an NLB listener; client keepalives stay below it.
NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS = 350.0
