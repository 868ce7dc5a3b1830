"""OpenTelemetry for the apps: the SDK set up from the standard ``OTEL_*``
variables (:mod:`.setup`) and a small OTLP receiver (:mod:`.collector`) that
the demo and the tests use to read traces back. Needs the ``otel`` extra."""
