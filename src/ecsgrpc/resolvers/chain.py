"""``A|B``: a fallback chain. B is asked only when A errors.

Each resolution asks the links in order and returns the first answer (an
empty answer is an answer, not an error); the snapshot's ``source`` names the
link that gave it. The refresh interval is that link's, capped by the
earlier links' own (so a static fallback does not stop the chain from
looking at its primary again). When every link
fails, the resolution fails (one message naming each link's error), and a
watch keeps its last-known-good snapshot as with any resolver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers.options import ResolverOptions
from ecsgrpc.resolvers.polling import PollingResolver

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["ChainResolver"]


class ChainResolver(PollingResolver):
    """Asks its links in order; owns them (closing the chain closes them)."""

    def __init__(
        self,
        links: Sequence[PollingResolver],
        *,
        target: str = "",
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not links:
            raise ValueError("a chain needs at least one link")
        target = target or "|".join(link.target for link in links)
        super().__init__("chain", target, options=options, registry=registry)
        self._links = tuple(links)
        self._answered: PollingResolver = self._links[0]

    @property
    def links(self) -> tuple[PollingResolver, ...]:
        return self._links

    async def _fetch(self) -> EndpointSet:
        errors = []
        for link in self._links:
            try:
                snapshot = await link.resolve()
            except ResolutionError as exc:
                errors.append(f"{link.name}: {exc}")
                continue
            self._answered = link
            return snapshot
        raise ResolutionError("every link failed: " + "; ".join(errors))

    def refresh_delay(self, snapshot: EndpointSet) -> float:
        """The answering link's delay, but no longer than any link before it would
        wait: a chain running on its fallback goes back to the primary as soon as
        the primary's own schedule says to look again."""
        index = self._links.index(self._answered)
        return min(link.refresh_delay(snapshot) for link in self._links[: index + 1])

    async def _release(self) -> None:
        for link in self._links:
            await link.aclose()
