"""An aiobotocore client for one AWS service, with botocore's errors translated.

* Endpoint override: ``endpoint_url`` (option), else the SDK's variables
  ``AWS_ENDPOINT_URL_<SERVICE>`` then ``AWS_ENDPOINT_URL``. With an override,
  host-prefix injection is turned off: botocore would otherwise send
  ``DiscoverInstances`` to ``data-<host>``, which does not exist locally.
* Retries: botocore's own are off (one attempt per call); the resolver's watch
  loop backs off with jitter and counts every failure, throttling included.
* Errors: throttling codes raise :class:`~ecsgrpc.resolvers.polling.Throttled`,
  everything else :class:`~ecsgrpc.errors.ResolutionError` with the API's code
  and message; nothing from botocore or aiohttp leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry

from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers.options import ResolverOptions
from ecsgrpc.resolvers.polling import PollingResolver, Throttled

__all__ = ["THROTTLING_CODES", "AwsApiResolver", "AwsClient", "endpoint_override"]

THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
# Environment suffix per service, as botocore derives it from the service id.
_ENV_SUFFIX = {"servicediscovery": "SERVICEDISCOVERY", "ecs": "ECS"}


def endpoint_override(service: str, explicit: str | None = None) -> str | None:
    """The endpoint URL the SDK would use instead of AWS's, or None."""
    if explicit:
        return explicit
    suffix = _ENV_SUFFIX.get(service, service.upper().replace("-", "_"))
    return os.environ.get(f"AWS_ENDPOINT_URL_{suffix}") or os.environ.get("AWS_ENDPOINT_URL")


class AwsClient:
    """Lazily created aiobotocore client; :meth:`call` runs one API operation.

    One event loop. :meth:`aclose` releases the HTTP session; later calls fail
    with ResolutionError.
    """

    def __init__(
        self,
        service: str,
        *,
        timeout: float,
        session: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self._service = service
        self._timeout = timeout
        self._session = session
        self._endpoint_url = endpoint_url
        self._region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._closed = False

    async def _get(self) -> Any:
        if self._closed:
            raise ResolutionError(f"{self._service} client is closed")
        if self._client is None:
            override = endpoint_override(self._service, self._endpoint_url)
            config = Config(
                connect_timeout=self._timeout,
                read_timeout=self._timeout,
                retries={"total_max_attempts": 1},
                inject_host_prefix=override is None,
            )
            session = self._session or get_session()
            self._client = await self._stack.enter_async_context(
                session.create_client(
                    self._service,
                    # botocore reads AWS_DEFAULT_REGION only; ECS and the other
                    # SDKs set AWS_REGION, so honour it too.
                    region_name=self._region or os.environ.get("AWS_REGION") or None,
                    endpoint_url=override,
                    config=config,
                )
            )
        return self._client

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Run ``operation`` (e.g. ``"discover_instances"``); raise ResolutionError/Throttled."""
        try:
            client = await self._get()
            async with asyncio.timeout(self._timeout * 2):
                result: dict[str, Any] = await getattr(client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            message = f"{operation}: {code}: {error.get('Message', '')}".rstrip(": ")
            if code in THROTTLING_CODES:
                raise Throttled(message) from None
            raise ResolutionError(message) from None
        except TimeoutError:
            raise ResolutionError(f"{operation}: no answer within {self._timeout * 2:g}s") from None
        except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise ResolutionError(f"{operation}: {type(exc).__name__}: {exc}") from None
        return result

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await self._stack.aclose()


class AwsApiResolver(PollingResolver):
    """A resolver that polls one AWS API (Cloud Map, ECS) with its own client.

    Subclasses implement ``_fetch`` with ``self._client.call(...)``; the poll
    interval is the ``poll`` option, else the target's.
    """

    def __init__(
        self,
        name: str,
        aws_service: str,
        target: str,
        poll: float,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(name, target, options=options, registry=registry)
        self._target_poll = poll
        opts = self._options
        self._client = AwsClient(
            aws_service,
            timeout=opts.timeout,
            session=opts.aws_session,
            endpoint_url=opts.endpoint_url,
            region=opts.region,
        )

    def _poll_interval(self) -> float:
        return self._options.poll or self._target_poll

    async def _release(self) -> None:
        await self._client.aclose()
