"""
Prometheus metrics (``GET /metrics``, the text format, ``prometheus-client``).

Two kinds: what this process measured (admission latency, agent calls and
their errors: histograms and counters here, observed where the work is done;
summed across gunicorn's workers when ``PROMETHEUS_MULTIPROC_DIR`` is set),
and what the database says now (GPUs, allocations, the queue, spend, metering
lag: each app registers a collector that reads it at scrape time).

Who may scrape: a bearer token (``OCENTER_METRICS_TOKEN``) or an address in
``OCENTER_METRICS_ALLOW`` (networks, ``10.0.0.0/8,127.0.0.1``); with neither
set the endpoint is not there (404).
"""

import hmac
import ipaddress
import os

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

PROCESS = CollectorRegistry(auto_describe=True)

ADMISSION_SECONDS = Histogram(
    "ocenter_admission_seconds",
    "Time to admit one request, from its tenant's lock to placed or queued (claiming not included).",
    ["outcome"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
    registry=PROCESS,
)
AGENT_CALL_SECONDS = Histogram(
    "ocenter_agent_call_seconds", "Calls to pool agents, by pool and call.", ["pool", "call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=PROCESS,
)  # fmt: skip
AGENT_CALL_ERRORS = Counter(
    "ocenter_agent_call_errors", "Calls to pool agents that failed, by pool and kind (unreachable, refused, error).",
    ["pool", "kind"], registry=PROCESS,
)  # fmt: skip

_collectors: list = []


def register(collector):
    """Add a collector (an object with ``collect()`` yielding metric families) read at every scrape."""
    if collector not in _collectors:
        _collectors.append(collector)


def exposition() -> tuple[bytes, str]:
    """(the body, its content type) of a scrape."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        measured = CollectorRegistry()
        multiprocess.MultiProcessCollector(measured)
    else:
        measured = PROCESS
    now = CollectorRegistry(auto_describe=False)
    for collector in _collectors:
        now.register(collector)
    return generate_latest(measured) + generate_latest(now), CONTENT_TYPE_LATEST


def may_scrape(request) -> bool | None:
    """True: this request may read the metrics; False: it may not; None: scraping is not configured."""
    token, allowed = settings.OCENTER_METRICS_TOKEN, settings.OCENTER_METRICS_ALLOW
    if not token and not allowed:
        return None
    sent = request.headers.get("Authorization", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowed)
