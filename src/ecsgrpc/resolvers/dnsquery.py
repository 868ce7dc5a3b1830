"""DNS lookups shared by the A/AAAA and SRV resolvers (dnspython's async resolver).

dnspython's exceptions stop here: callers get :class:`NameNotFound` (NXDOMAIN,
an answer that says the name does not exist) or
:class:`~ecsgrpc.errors.ResolutionError` (timeout, SERVFAIL, REFUSED, network).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from ecsgrpc.errors import ResolutionError

__all__ = ["AddressAnswer", "NameNotFound", "lookup", "lookup_addresses", "make_dns_resolver"]


class NameNotFound(ResolutionError):
    """The DNS answered NXDOMAIN: the name does not exist (yet, or any more)."""


@dataclass(frozen=True, slots=True)
class AddressAnswer:
    """Addresses of a name (A then AAAA, as answered) and the smallest record TTL."""

    addresses: tuple[str, ...]
    ttl: float | None


async def make_dns_resolver(nameserver: tuple[str, int] | None) -> dns.asyncresolver.Resolver:
    """A resolver for an explicit ``(ip, port)``, or the system's (read off the loop)."""
    if nameserver is None:
        # Reading /etc/resolv.conf is blocking file I/O: keep it off the event loop.
        return await asyncio.to_thread(dns.asyncresolver.Resolver)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    return resolver


async def lookup(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str, *, lifetime: float
) -> dns.resolver.Answer:
    """One query; an answer without records is returned (``answer.rrset is None``)."""
    try:
        return await resolver.resolve(
            name, rdtype, lifetime=lifetime, raise_on_no_answer=False, search=False
        )
    except dns.resolver.NXDOMAIN:
        raise NameNotFound(f"{name}: no such name (NXDOMAIN)") from None
    except dns.resolver.LifetimeTimeout:
        raise ResolutionError(f"{name} {rdtype}: DNS timeout after {lifetime:g}s") from None
    except dns.resolver.NoNameservers as exc:
        raise ResolutionError(f"{name} {rdtype}: no nameserver answered ({_short(exc)})") from None
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        raise ResolutionError(f"{name} {rdtype}: {type(exc).__name__}: {_short(exc)}") from None


async def lookup_addresses(
    resolver: dns.asyncresolver.Resolver, name: str, *, lifetime: float
) -> AddressAnswer:
    """A and AAAA records of ``name`` (both asked at once).

    Raises NameNotFound when neither exists and ResolutionError when either
    query failed (a partial answer could silently drop endpoints).
    """
    if _is_ip(name):
        return AddressAnswer((name,), None)
    results = await asyncio.gather(
        lookup(resolver, name, "A", lifetime=lifetime),
        lookup(resolver, name, "AAAA", lifetime=lifetime),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    answers = [r for r in results if isinstance(r, dns.resolver.Answer)]
    hard = [e for e in errors if not isinstance(e, NameNotFound)]
    if hard:
        raise hard[0]
    if not answers:
        raise errors[0]
    addresses: list[str] = []
    ttls: list[int] = []
    for answer in answers:
        if answer.rrset is not None:
            addresses.extend(rdata.address for rdata in answer.rrset)
            ttls.append(answer.rrset.ttl)
    return AddressAnswer(tuple(addresses), float(min(ttls)) if ttls else None)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
