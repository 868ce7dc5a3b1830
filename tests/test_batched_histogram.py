"""BatchedHistogram: batched observations export exactly what observe() would."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ecsgrpc.metrics import LATENCY_BUCKETS, BatchedHistogram, client_metrics


def _pair() -> tuple[CollectorRegistry, BatchedHistogram, CollectorRegistry, Histogram]:
    a, b = CollectorRegistry(), CollectorRegistry()
    batched = BatchedHistogram(
        "h_seconds", "h", ["method", "code"], buckets=LATENCY_BUCKETS, registry=a
    )
    plain = Histogram("h_seconds", "h", ["method", "code"], buckets=LATENCY_BUCKETS, registry=b)
    return a, batched, b, plain


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every exported sample but the creation timestamps (which differ by nature)."""
    return [
        (s.name, s.labels, s.value)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def test_batched_values_export_exactly_as_observed() -> None:
    a, batched, b, plain = _pair()
    values = [0.0001 * i for i in range(500)] + [3.0, 70.0]
    batch = batched.batch("/s/M", "OK")
    for v in values:
        batch.append(v)
        plain.labels("/s/M", "OK").observe(v)
    batched.labels("/s/M", "UNAVAILABLE").observe(0.2)  # observe() still works alongside
    plain.labels("/s/M", "UNAVAILABLE").observe(0.2)
    assert _samples(a) == _samples(b)
    assert a.get_sample_value("h_seconds_count", {"method": "/s/M", "code": "OK"}) == len(values)
    # Folded once: a second scrape does not count them again.
    assert _samples(a) == _samples(b)
    assert not batch


def test_edge_values_fall_in_the_buckets_observe_puts_them_in() -> None:
    # fold() bisects where observe() scans: every bound itself, just above and
    # below it, negatives, zero and infinity land in the same bucket; a NaN in
    # none (and makes the sum NaN, as observe() does).
    a, batched, b, plain = _pair()
    values = [-1.0, 0.0, float("inf")]
    for bound in LATENCY_BUCKETS:
        values += [bound, bound * (1 - 1e-12), bound * (1 + 1e-12)]
    batch = batched.batch("/s/M", "OK")
    for v in values:
        batch.append(v)
        plain.labels("/s/M", "OK").observe(v)
    assert _samples(a) == _samples(b)
    batch.append(float("nan"))
    plain.labels("/s/M", "OK").observe(float("nan"))
    batch.append(0.5)
    plain.labels("/s/M", "OK").observe(0.5)
    got, want = _samples(a), _samples(b)
    assert [s[:2] for s in got] == [s[:2] for s in want]
    assert str([s[2] for s in got]) == str([s[2] for s in want])  # nan == nan, as text


def test_a_new_batch_is_exported_before_its_first_value() -> None:
    a, batched, _, _ = _pair()
    batched.batch("/s/M", "OK")
    assert a.get_sample_value("h_seconds_count", {"method": "/s/M", "code": "OK"}) == 0


def test_scrapes_from_another_thread_lose_and_double_nothing() -> None:
    a, batched, _, _ = _pair()
    batch = batched.batch("/s/M", "OK")
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            generate_latest(a)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for i in range(200_000):
            batch.append(0.001)
            if i % 5_000 == 0:
                batched.fold()
    finally:
        stop.set()
        scraper.join(timeout=30)
    assert a.get_sample_value("h_seconds_count", {"method": "/s/M", "code": "OK"}) == 200_000
    assert a.get_sample_value("h_seconds_sum", {"method": "/s/M", "code": "OK"}) == (
        sum(0.001 for _ in range(200_000))
    )


def test_the_client_duration_histogram_is_batched() -> None:
    assert isinstance(client_metrics(CollectorRegistry()).duration, BatchedHistogram)
