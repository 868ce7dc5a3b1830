"""The dnsmasq launcher, now in the package (``ecsgrpc_apps.local.dnsmasq``); re-exported for tests."""

from ecsgrpc_apps.local.dnsmasq import DNSMASQ, DOMAIN, Dnsmasq, DnsmasqMissing, dnsmasq_path

__all__ = ["DNSMASQ", "DOMAIN", "Dnsmasq", "DnsmasqMissing", "dnsmasq_path"]
