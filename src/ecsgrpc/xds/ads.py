"""The Aggregated Discovery Service, state of the world (the xDS transport protocol).

One :class:`AdsStream` per client stream. Per resource type it keeps what the
client subscribed to, the version and nonce of the last response, and what the
client acknowledged, and follows the protocol's rules:

* a request whose ``response_nonce`` is not the latest one sent for its type is
  stale and ignored (the client will send another);
* a request with the latest nonce and ``error_detail`` is a NACK: counted and
  logged, the rejected resources are not sent again until they change; without
  ``error_detail`` it is an ACK of ``version_info``;
* the first request of a type (empty nonce, e.g. after a reconnect) and any
  change of ``resource_names`` get a response at once; after that a response
  goes out only when the resources for that client change (the version is a
  hash of them);
* Listener and Cluster responses hold every subscribed resource that exists
  (an absent one tells the client it does not exist); an empty subscription to
  them is the legacy wildcard (everything). RouteConfiguration and
  ClusterLoadAssignment responses hold the subscribed ones that exist.

The client's zone is ``node.locality.zone`` of its first request (its bootstrap):
its load assignments put that zone first (see :mod:`ecsgrpc.xds.resources`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

from ecsgrpc.xds.catalog import Catalog
from ecsgrpc.xds.metrics import XdsMetrics
from ecsgrpc.xds.resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    TYPE_URLS,
    cluster,
    listener,
    pack,
    route_configuration,
    version_of,
)

__all__ = ["AdsServicer", "AdsStream", "StaticResources"]

_log = logging.getLogger(__name__)
_SHORT = {LISTENER: "lds", ROUTE: "rds", CLUSTER: "cds", ENDPOINT: "eds"}
_WILDCARD_TYPES = (LISTENER, CLUSTER)


class StaticResources:
    """Listener, RouteConfiguration and Cluster of every service, packed once."""

    def __init__(self, catalog: Catalog) -> None:
        self.by_type: dict[str, dict[str, any_pb2.Any]] = {
            LISTENER: {n: pack(listener(s)) for n, s in catalog.services.items()},
            ROUTE: {n: pack(route_configuration(s)) for n, s in catalog.services.items()},
            CLUSTER: {n: pack(cluster(s)) for n, s in catalog.services.items()},
        }


@dataclass(slots=True)
class _TypeState:
    names: frozenset[str] = frozenset()
    wildcard: bool = False
    nonce: str = ""
    version: str = ""  # of the last response sent
    acked: str = ""
    rejected: str = ""  # version the client NACKed


class AdsStream:
    """The protocol state of one client's ADS stream (see the module docstring)."""

    _nonces = itertools.count(1)

    def __init__(self, catalog: Catalog, static: StaticResources, metrics: XdsMetrics) -> None:
        self._catalog = catalog
        self._static = static
        self._metrics = metrics
        self._types: dict[str, _TypeState] = {}
        self.node_id = ""
        self.zone: str | None = None

    def handle(self, request: Any) -> discovery_pb2.DiscoveryResponse | None:
        """Apply one DiscoveryRequest; the response to send now, if any."""
        type_url = request.type_url
        if type_url not in TYPE_URLS:
            self._metrics.requests.labels("other", "ignored").inc()
            return None
        if request.HasField("node") and not self.node_id:
            self.node_id = request.node.id
            self.zone = request.node.locality.zone or None
        short = _SHORT[type_url]
        state = self._types.setdefault(type_url, _TypeState())
        first = not request.response_nonce
        if not first:
            if request.response_nonce != state.nonce:
                self._metrics.requests.labels(short, "stale").inc()
                return None
            if request.HasField("error_detail"):
                state.rejected = state.version
                self._metrics.requests.labels(short, "nack").inc()
                _log.warning(
                    "client %s rejected %s version %s: %s",
                    self.node_id,
                    short,
                    state.version,
                    request.error_detail.message,
                )
            else:
                state.acked = request.version_info
                self._metrics.requests.labels(short, "ack").inc()
        names = frozenset(request.resource_names) - {"*"}
        wildcard = type_url in _WILDCARD_TYPES and (
            "*" in request.resource_names or (first and not names and not state.names)
        )
        if first or names != state.names or wildcard != state.wildcard:
            self._metrics.requests.labels(short, "subscribe").inc()
            state.names, state.wildcard = names, wildcard
            return self._respond(type_url, state, force=True)
        return None

    def on_change(self) -> list[discovery_pb2.DiscoveryResponse]:
        """Responses for every subscribed type whose resources changed."""
        out = []
        for type_url, state in self._types.items():
            response = self._respond(type_url, state, force=False)
            if response is not None:
                out.append(response)
        return out

    def _resources(self, type_url: str, state: _TypeState) -> list[any_pb2.Any]:
        if type_url == ENDPOINT:
            found = (self._catalog.assignment(n, self.zone) for n in sorted(state.names))
            return [r for r in found if r is not None]
        known: Mapping[str, any_pb2.Any] = self._static.by_type[type_url]
        names = sorted(known) if state.wildcard else sorted(state.names)
        return [known[n] for n in names if n in known]

    def _respond(
        self, type_url: str, state: _TypeState, *, force: bool
    ) -> discovery_pb2.DiscoveryResponse | None:
        resources = self._resources(type_url, state)
        version = version_of(resources)
        if not force and version in (state.version, state.rejected):
            return None
        state.version = version
        state.nonce = str(next(self._nonces))
        self._metrics.responses.labels(_SHORT[type_url]).inc()
        return discovery_pb2.DiscoveryResponse(
            version_info=version, resources=resources, type_url=type_url, nonce=state.nonce
        )


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """``envoy.service.discovery.v3.AggregatedDiscoveryService`` on grpc.aio."""

    def __init__(self, catalog: Catalog, metrics: XdsMetrics) -> None:
        self._catalog = catalog
        self._static = StaticResources(catalog)
        self._metrics = metrics

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        stream = AdsStream(self._catalog, self._static, self._metrics)
        requests: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    requests.put_nowait(request)
            finally:
                requests.put_nowait(done)

        reader = asyncio.get_running_loop().create_task(read())
        self._metrics.streams.inc()
        generation = self._catalog.snapshot.generation
        try:
            while True:
                next_request = asyncio.ensure_future(requests.get())
                newer = asyncio.ensure_future(self._catalog.wait_newer(generation))
                finished, _ = await asyncio.wait(
                    {next_request, newer}, return_when=asyncio.FIRST_COMPLETED
                )
                if newer not in finished:
                    newer.cancel()
                else:
                    generation = newer.result().generation
                    for response in stream.on_change():
                        yield response
                if next_request not in finished:
                    next_request.cancel()
                    continue
                request = next_request.result()
                if request is done:
                    return
                response = stream.handle(request)
                if response is not None:
                    yield response
        finally:
            self._metrics.streams.dec()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                await reader

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[discovery_pb2.DeltaDiscoveryResponse]:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "incremental xDS is not served: use state of the world"
        )
        yield discovery_pb2.DeltaDiscoveryResponse()  # pragma: no cover (unreachable)
