"""Prometheus scrapes oCenter and its agents: both answer in the text format, parsed here with prometheus_client's own parser."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789abcdef"


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families: dict, name: str, sample: str = "", **labels) -> float:
    """The sum of the family's samples named ``sample`` (the family's own name: a gauge's; ``…_count``: a histogram's) with these labels."""
    sample = sample or name
    samples = [s for s in families[name].samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert samples, (name, labels, families[name].samples)
    return sum(s.value for s in samples)


def test_metrics_are_off_until_configured_and_refused_without_the_token(client, settings):
    settings.OCENTER_METRICS_TOKEN, settings.OCENTER_METRICS_ALLOW = "", []
    assert client.get("/metrics").status_code == 404
    settings.OCENTER_METRICS_TOKEN = TOKEN
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer") and b"OCENTER_METRICS_TOKEN" in refused.content
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    settings.OCENTER_METRICS_ALLOW = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200  # from the allowed network, no token needed
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.9").status_code == 401


def test_a_scrape_tells_the_fleet_the_allocations_the_queue_and_what_the_process_measured(client, settings, fleet):
    settings.OCENTER_METRICS_TOKEN = TOKEN
    _, project, _, api = fleet.tenant("acme")
    whole = {"project": str(project.id), "compute_units": 100, "memory_mib": 1024}
    for _ in range(3):  # two GPUs: the third waits
        assert api.post("/api/v1/allocations", whole, format="json").status_code == 201
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    families = _families(response.content.decode())
    assert _value(families, "ocenter_gpus", pool="bj", model="A100-SXM4-80GB", health="healthy") == 2
    assert _value(families, "ocenter_allocated_compute_units", pool="bj") == 200
    assert _value(families, "ocenter_compute_units", pool="bj") == 200
    assert _value(families, "ocenter_allocated_memory_mib", pool="bj") == 2048
    assert _value(families, "ocenter_allocations", state="running", tenant="acme") == 2
    assert _value(families, "ocenter_allocations", state="queued", tenant="acme") == 1
    assert _value(families, "ocenter_queue_length", **{"class": "offline"}) == 1
    assert _value(families, "ocenter_queue_oldest_wait_seconds") >= 0
    assert _value(families, "ocenter_pool_up", pool="bj") == 1
    assert _value(families, "ocenter_admission_seconds", "ocenter_admission_seconds_count", outcome="placed") >= 2
    assert _value(families, "ocenter_admission_seconds", "ocenter_admission_seconds_count", outcome="queued") >= 1
    assert (
        _value(families, "ocenter_agent_call_seconds", "ocenter_agent_call_seconds_count", pool="bj", call="PUT /v1/allocations/{id}") >= 2
    )
    assert "ocenter_tenant_spend_month" in families and "ocenter_metering_lag_seconds" in families
    assert "ocenter_idle_allocations" in families


def test_an_agent_serves_its_gpus_figures_for_prometheus(fleet):
    agent = fleet.agent
    assert httpx.get(f"{agent.url}/metrics", timeout=5).status_code == 401  # the pool token, as for every call
    response = httpx.get(f"{agent.url}/metrics", headers={"Authorization": f"Bearer {agent.token}"}, timeout=5)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = _families(response.text)
    uuids = {s.labels["uuid"] for s in families["ocenter_agent_gpu_utilization_percent"].samples}
    assert len(uuids) == 2 and all(s.labels["pool"] == "bj" for s in families["ocenter_agent_gpu_power_watts"].samples)
    for name in ("ocenter_agent_gpu_memory_used_mib", "ocenter_agent_gpu_temperature_celsius", "ocenter_agent_claims"):
        assert families[name].samples, name


def test_the_grafana_dashboard_asks_only_for_metrics_that_exist(client, settings, fleet):
    import json
    import re
    from pathlib import Path

    settings.OCENTER_METRICS_TOKEN = TOKEN
    _, project, _, api = fleet.tenant("acme")
    api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 50, "memory_mib": 1024}, format="json")
    exposed = set(_families(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()))
    exposed |= set(_families(fleet.agent.client().get("/metrics").text))
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    asked = {name for panel in dashboard["panels"] for target in panel["targets"] for name in re.findall(r"\bocenter_\w+", target["expr"])}
    suffixes = re.compile(r"_(bucket|count|sum|total)$")
    missing = {name for name in asked if name not in exposed and suffixes.sub("", name) not in exposed}
    assert len(dashboard["panels"]) >= 12 and missing == set(), missing
