"""A Workflow Agent process whose replies are large: ``python -m tests.gateway.big_agent HOST MB``.

Each conversation streams ``MB`` megabytes of DELTA text in 64 KiB events, as
fast as its reader takes them; it prints ``port N`` once serving, and counts
nothing else. Used to show backpressure from a slow HTTP client to the agent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc

from ecsgrpc.config import ServerSettings
from ecsgrpc.server import Server
from ecsgrpc_apps.workflow import pb2
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.settings import AgentSettings

CHUNK = 64 * 1024
Kind = pb2.ConversationEvent.Kind


class BigAgent(WorkflowAgentServicer):
    def __init__(self, megabytes: int) -> None:
        super().__init__(AgentSettings(instance_id="big"))
        self.events = megabytes * 1024 * 1024 // CHUNK

    async def ProcessConversation(  # type: ignore[override]
        self, request: pb2.ConversationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb2.ConversationEvent]:
        text = "x" * CHUNK
        yield self._event(request, 0, Kind.KIND_START)
        for index in range(self.events):
            yield self._event(request, index + 1, Kind.KIND_DELTA, text=text)
        yield self._event(request, self.events + 1, Kind.KIND_COMPLETE, delta_count=self.events)


async def main(host: str, megabytes: int) -> None:
    settings = ServerSettings(host=host, port=0, drain_seconds=0, grace_seconds=0.5)
    server = Server([agent_service(BigAgent(megabytes))], settings=settings)
    await server.start()
    print(f"port {server.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
