"""gRPC's interoperability tests for our channel: server, case runner, command.

Written from gRPC's published interop test descriptions
(``doc/interop-test-descriptions.md`` in the grpc repository), with the same
wire names (``grpc.testing.TestService``) so any gRPC interop client or server
can stand on the other side. See docs/interop.md.
"""

from ecsgrpc_apps.interop._proto import empty_pb2, messages_pb2, test_pb2
from ecsgrpc_apps.interop._proto import test_pb2_grpc as test_pb2_grpc

SERVICE_NAME = "grpc.testing.TestService"
UNIMPLEMENTED_SERVICE_NAME = "grpc.testing.UnimplementedService"
# Echo Metadata: the server echoes these keys back (initial / trailing metadata).
ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"

__all__ = [
    "ECHO_INITIAL_KEY",
    "ECHO_TRAILING_KEY",
    "SERVICE_NAME",
    "UNIMPLEMENTED_SERVICE_NAME",
    "empty_pb2",
    "messages_pb2",
    "test_pb2",
    "test_pb2_grpc",
]
