"""Health checking: the probe (server side checks) and, later, client watches."""
