"""``BalancedChannel``: a drop-in for ``grpc.aio.Channel`` that balances over a target.

Any generated stub works on it (``FooStub(channel)``): it implements the four
multicallable factories. It runs a resolver watch in the background, keeps one
subchannel per endpoint, and routes each call through the current picker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import grpc

from ecsgrpc.balancing.picker import POLICIES
from ecsgrpc.defaults import DEFAULT_CLIENT_KEEPALIVE_SECONDS
from ecsgrpc.errors import ConfigError, NoEndpointAvailable
from ecsgrpc.resolvers.base import Resolver
from ecsgrpc.telemetry import Telemetry
from ecsgrpc.telemetry import resolve as resolve_telemetry

if TYPE_CHECKING:
    # The call machinery (balancer, router, call objects, metrics) loads when
    # the channel is first used, not at connect(): what a process pays to
    # import the library and connect stays near grpc.aio's own cost.
    from prometheus_client import CollectorRegistry

    from ecsgrpc.balancing.balancer import Balancer
    from ecsgrpc.balancing.callables import (
        Interceptors,
        StreamStreamMultiCallable,
        StreamUnaryMultiCallable,
        UnaryStreamMultiCallable,
        UnaryUnaryMultiCallable,
    )
    from ecsgrpc.balancing.outlier import OutlierConfig
    from ecsgrpc.balancing.retry import RetryPolicy
    from ecsgrpc.balancing.router import Router
    from ecsgrpc.balancing.stall import StallConfig
    from ecsgrpc.balancing.status import EndpointStatus
    from ecsgrpc.telemetry.client import ClientTelemetry

if TYPE_CHECKING:  # loaded only when security is configured (import cost of connect())
    from ecsgrpc.security.client import ChannelSecurity, ClientSecurity

__all__ = ["BalancedChannel", "channel_options", "connect"]

log = logging.getLogger(__name__)


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Options of each per-endpoint grpc channel.

    Keepalive every 60 s, below the NLB's 350 s idle timeout and above the 30 s
    our servers permit (no ``too_many_pings``); a local subchannel pool so each
    BalancedChannel owns its connections.
    """
    return [
        ("grpc.keepalive_time_ms", int(DEFAULT_CLIENT_KEEPALIVE_SECONDS * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.use_local_subchannel_pool", 1),
        # Reconnect quickly after a task restart; grpc's default starts at 1 s.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
        *extra,
    ]


class BalancedChannel(grpc.aio.Channel):  # type: ignore[misc]
    """Balances calls over the endpoints a resolver reports. One event loop.

    A ``grpc.aio.Channel``: generated stubs, the four call kinds and grpc.aio's
    client interceptors (``interceptors=``, run once per call around all of its
    attempts) work on it unchanged. Its calls follow the contract in
    :mod:`ecsgrpc.balancing.calls` (commit rule, safe retries).

    Use ``async with connect(target) as channel`` (or call :meth:`close`).
    Calls made before the first resolution wait for an endpoint (up to their
    deadline, or ``connect_timeout`` without one) unless ``wait_for_ready=False``.

    ``security`` (TLS files, bearer token; see :mod:`ecsgrpc.security`) is read
    at construction (ConfigError naming the setting and file); the TLS files are
    re-checked whenever discovery reports a new endpoint set and new
    subchannels use the current ones. ``credentials`` is the raw alternative
    (fixed ``grpc.ChannelCredentials``); give one or the other.

    ``telemetry``: OpenTelemetry spans (one per call, an event per attempt),
    ``traceparent`` propagation and gRFC A66 metrics (:mod:`ecsgrpc.telemetry`).
    None: on when opentelemetry-api is installed; False: off.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        target: str,
        policy: str = "least_request",
        health_check: bool = True,
        health_service: str = "",
        zone: str | None = None,
        detect_ecs_zone: bool = True,
        retry: RetryPolicy | None = None,
        outlier: OutlierConfig | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        registry: CollectorRegistry | None = None,
        connect_timeout: float = 20.0,
        idempotent_methods: Collection[str] = (),
        security: ClientSecurity | None = None,
        interceptors: Sequence[Any] = (),
        stall: StallConfig | None = None,
        telemetry: Telemetry | bool | None = None,
    ) -> None:
        chosen = resolve_telemetry(telemetry)
        if credentials is not None and security is not None and security.tls is not None:
            raise ConfigError("give TLS either as credentials= or as security=, not both")
        if policy not in POLICIES:
            raise ConfigError(f"unknown policy {policy!r}; choose one of {sorted(POLICIES)}")
        if connect_timeout <= 0:
            raise ConfigError(f"connect_timeout must be > 0, got {connect_timeout!r}")
        self.target = target
        self._resolver = resolver
        self._credentials = credentials
        self._security: ChannelSecurity | None = None
        if security is not None:
            from ecsgrpc.security.client import ChannelSecurity

            self._security = ChannelSecurity(security)
        if security is not None and security.token is not None and not self.uses_tls:
            log.warning("a bearer token is configured without TLS: it travels in plaintext")
        self._options = channel_options(options)
        self._connect_timeout = connect_timeout
        self._zone = zone
        self._detect_zone = detect_ecs_zone and zone is None
        # Everything the first use builds (see _build).
        self._settings = _Settings(
            policy=policy,
            health_check=health_check,
            health_service=health_service,
            retry=retry,
            outlier=outlier,
            registry=registry,
            idempotent_methods=idempotent_methods,
            interceptors=tuple(interceptors),
            stall=stall,
            telemetry=chosen,
        )
        if interceptors:
            _ = self._interceptors  # a bad interceptor is a ConfigError now, not at the first call
        self._watch_task: asyncio.Task[None] | None = None
        self._closed = False

    @functools.cached_property
    def _balancer(self) -> Balancer:
        from ecsgrpc.balancing.balancer import Balancer
        from ecsgrpc.balancing.outlier import OutlierDetector
        from ecsgrpc.balancing.picker import ZonePolicy
        from ecsgrpc.metrics import client_metrics

        s = self._settings
        return Balancer(
            target=self.target,
            policy=s.policy,
            channel_factory=self._new_channel,
            metrics=client_metrics(s.registry),
            outlier=OutlierDetector(s.outlier),
            zone_policy=ZonePolicy(self._zone) if self._zone else None,
            health_check=s.health_check,
            health_service=s.health_service,
            on_endpoint_lost=self._resolve_now,
            stall=s.stall,
        )

    @functools.cached_property
    def _router(self) -> Router:
        from ecsgrpc.balancing.retry import RetryPolicy
        from ecsgrpc.balancing.router import Router
        from ecsgrpc.metrics import client_metrics

        s = self._settings
        return Router(
            balancer=self._balancer,
            target=self.target,
            policy=s.retry or RetryPolicy(),
            idempotent=s.idempotent_methods,
            metrics=client_metrics(s.registry),
            connect_timeout=self._connect_timeout,
            start=self._ensure_started,
            describe=self._describe,
            telemetry=None if s.telemetry is None else _client_telemetry(s.telemetry, self.target),
        )

    @functools.cached_property
    def _interceptors(self) -> Interceptors:
        from ecsgrpc.balancing.callables import Interceptors

        return Interceptors(self._settings.interceptors)

    def _resolve_now(self) -> None:
        resolve_now = getattr(self._resolver, "resolve_now", None)
        if resolve_now is not None:
            resolve_now()

    def _new_channel(self, address: str) -> grpc.aio.Channel:
        if self._security is not None:
            return self._security.new_channel(address, self._options, self._credentials)
        if self._credentials is not None:
            return grpc.aio.secure_channel(address, self._credentials, options=self._options)
        return grpc.aio.insecure_channel(address, options=self._options)

    # Lifecycle.
    def _ensure_started(self) -> None:
        if self._watch_task is None:
            if self._closed:
                raise NoEndpointAvailable(grpc.StatusCode.UNAVAILABLE, "channel is closed")
            self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        if self._detect_zone:
            from ecsgrpc.balancing.picker import ZonePolicy
            from ecsgrpc.balancing.zone import detect_zone

            zone = await detect_zone()
            if zone:
                self._zone = zone
                self._balancer.zone_policy = ZonePolicy(zone)
        delay = 0.1
        while not self._closed:
            try:
                async for snapshot in self._resolver.watch():
                    if self._security is not None:
                        await self._security.refresh()
                    self._balancer.apply(snapshot)
                    delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("resolver for %s failed; restarting its watch", self.target)
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def __aenter__(self) -> Self:
        self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Stop discovery and close every connection.

        As ``grpc.aio.Channel.close``: with ``grace`` (seconds), calls in
        flight get that long to finish before they are cancelled; without it
        they are cancelled now. New calls fail at once (UNAVAILABLE) either way.
        """
        if self._closed:
            return
        self._closed = True
        if "_router" not in self.__dict__:  # never used: nothing was built or started
            await self._resolver.aclose()
            return
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        await self._resolver.aclose()
        self._router.closed = True
        if grace is not None and grace > 0:
            # Polled, not signalled: the per-call path pays nothing for close(grace).
            end = time.monotonic() + grace
            while self._router.in_flight > 0 and time.monotonic() < end:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await self._balancer.aclose()

    # grpc.aio.Channel's surface.
    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> UnaryUnaryMultiCallable:
        from ecsgrpc.balancing.callables import UnaryUnaryMultiCallable

        return UnaryUnaryMultiCallable(
            self._router,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors.unary_unary,
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> UnaryStreamMultiCallable:
        from ecsgrpc.balancing.callables import UnaryStreamMultiCallable

        return UnaryStreamMultiCallable(
            self._router,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors.unary_stream,
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> StreamUnaryMultiCallable:
        from ecsgrpc.balancing.callables import StreamUnaryMultiCallable

        return StreamUnaryMultiCallable(
            self._router,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors.stream_unary,
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> StreamStreamMultiCallable:
        from ecsgrpc.balancing.callables import StreamStreamMultiCallable

        return StreamStreamMultiCallable(
            self._router,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors.stream_stream,
        )

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        if try_to_connect:
            self._ensure_started()
        return self._balancer.connectivity()

    async def channel_ready(self, timeout: float | None = None, *, min_ready: int = 1) -> None:
        """Wait until at least ``min_ready`` endpoints take calls.

        Raises NoEndpointAvailable (DEADLINE_EXCEEDED) when ``timeout`` passes,
        or (UNAVAILABLE) after ``connect_timeout`` when no timeout is given.
        """
        self._ensure_started()
        since = time.monotonic()
        deadline = None if timeout is None else since + timeout
        while self._balancer.ready_count() < min_ready:
            await self._router.wait_for_change(deadline, since, min_ready)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Wait until :meth:`get_state` differs from ``last_observed_state``."""
        self._ensure_started()
        while self._balancer.connectivity() == last_observed_state:
            await self._balancer.wait_for_change(None)

    # Introspection.
    def endpoints(self) -> tuple[EndpointStatus, ...]:
        """Every endpoint's state, health, in-flight calls, ejection and zone."""
        return self._balancer.statuses()

    @property
    def ready_count(self) -> int:
        return self._balancer.ready_count()

    @property
    def zone(self) -> str | None:
        return self._zone

    @property
    def uses_tls(self) -> bool:
        return self._credentials is not None or (self._security is not None and self._security.tls)

    def _describe(self) -> str:
        """The balancer's summary, the discovery error when there is no endpoint,
        and the last connection error with a TLS hint."""
        from ecsgrpc.security.diagnose import explain_connect_error

        text = self._balancer.describe()
        discovery_error = getattr(self._resolver, "last_error", None)
        if discovery_error is not None and not self._balancer.endpoint_count():
            return f"discovery failed: {discovery_error}"
        errors = [s.last_error for s in self.endpoints() if s.last_error and not s.pickable]
        if not errors:
            return text
        hint = explain_connect_error(errors[0], tls=self.uses_tls)
        return f"{text}; last error: {errors[0]}" + (f"; likely cause: {hint}" if hint else "")


def connect(
    target: str | Resolver,
    *,
    policy: str = "least_request",
    health_check: bool = True,
    health_service: str = "",
    zone: str | None = None,
    retry: RetryPolicy | None = None,
    outlier: OutlierConfig | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
    registry: CollectorRegistry | None = None,
    connect_timeout: float = 20.0,
    idempotent_methods: Collection[str] = (),
    resolver_options: dict[str, Any] | None = None,
    security: ClientSecurity | None = None,
    interceptors: Sequence[Any] = (),
    stall: StallConfig | None = None,
    telemetry: Telemetry | bool | None = None,
) -> BalancedChannel:
    """A :class:`BalancedChannel` for ``target`` (a target string or a Resolver).

    ``security``: TLS/mTLS and a bearer token (see :class:`BalancedChannel`).
    ``stall``: silence detection (a frozen or black-holed endpoint is set
    aside within about 1 s while others answer; see ``balancing/stall.py``);
    ``StallConfig(enabled=False)`` turns it off.
    ``interceptors``: grpc.aio client interceptors, run once per call.
    ``telemetry``: OpenTelemetry (see :class:`BalancedChannel`).
    Raises ConfigError for a bad target, option or security file (the message
    names it).
    """
    if isinstance(target, str):
        from ecsgrpc.resolvers.registry import build_resolver

        resolver: Resolver = build_resolver(target, registry=registry, **(resolver_options or {}))
        label = target
    else:
        resolver = target
        label = resolver.name
    return BalancedChannel(
        resolver,
        target=label,
        policy=policy,
        health_check=health_check,
        health_service=health_service,
        zone=zone,
        retry=retry,
        outlier=outlier,
        credentials=credentials,
        options=options,
        registry=registry,
        connect_timeout=connect_timeout,
        idempotent_methods=idempotent_methods,
        security=security,
        interceptors=interceptors,
        stall=stall,
        telemetry=telemetry,
    )


class _Settings:
    """What ``BalancedChannel`` builds its balancer and router from on first use.
    (A plain class: a dataclass costs a millisecond at import, and this module
    is on every process's connect() path.)"""

    __slots__ = (
        "health_check",
        "health_service",
        "idempotent_methods",
        "interceptors",
        "outlier",
        "policy",
        "registry",
        "retry",
        "stall",
        "telemetry",
    )

    def __init__(
        self,
        *,
        policy: str,
        health_check: bool,
        health_service: str,
        retry: RetryPolicy | None,
        outlier: OutlierConfig | None,
        registry: CollectorRegistry | None,
        idempotent_methods: Collection[str],
        interceptors: tuple[Any, ...],
        stall: StallConfig | None,
        telemetry: Telemetry | None,
    ) -> None:
        self.policy = policy
        self.health_check = health_check
        self.health_service = health_service
        self.retry = retry
        self.outlier = outlier
        self.registry = registry
        self.idempotent_methods = idempotent_methods
        self.interceptors = interceptors
        self.stall = stall
        self.telemetry = telemetry


def _client_telemetry(telemetry: Telemetry, target: str) -> ClientTelemetry:
    from ecsgrpc.telemetry.client import ClientTelemetry  # opentelemetry-api: imported only here

    return ClientTelemetry(telemetry, target)
