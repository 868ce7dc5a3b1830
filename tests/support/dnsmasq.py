"""The dnsmasq launcher, now in the package (``ecsgrpc.local.dnsmasq``); re-exported for tests."""

from ecsgrpc.local.dnsmasq import DNSMASQ, DOMAIN, Dnsmasq, DnsmasqMissing, dnsmasq_path

__all__ = ["DNSMASQ", "DOMAIN", "Dnsmasq", "DnsmasqMissing", "dnsmasq_path"]
