"""The pool agent as a real process over HTTP: protocol v1, auth, idempotency, durability, faults."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.agents import a100_nodes


def _first_gpu(client) -> dict:
    return client.get("/v1/inventory").json()["nodes"][0]["accelerators"][0]


def _claim(client, gpu_uuid, units=25, mib=10240, claim_id=None):
    return client.put(f"/v1/allocations/{claim_id or uuid.uuid4()}", json={"gpu_uuid": gpu_uuid, "compute_units": units, "memory_mib": mib})


@pytest.fixture
def agent(agents):
    return agents("auth-pool", [a100_nodes(2, gpus=4)])


@pytest.mark.parametrize("path", ["/v1/health", "/v1/inventory", "/v1/allocations", "/v1/metrics"])
def test_every_call_needs_the_pool_token(agent, path):
    assert httpx.get(agent.url + path).status_code == 401
    wrong = agent.client(token="not-the-token-0123456789").get(path)
    assert wrong.status_code == 401
    assert "bearer token" in wrong.json()["detail"]
    assert agent.client().get(path).status_code == 200


def test_claim_needs_the_token_and_leaves_nothing_without_it(agent):
    gpu = _first_gpu(agent.client())
    response = httpx.put(f"{agent.url}/v1/allocations/{uuid.uuid4()}", json={"gpu_uuid": gpu["uuid"], "compute_units": 10, "memory_mib": 1})
    assert response.status_code == 401
    assert agent.client().get("/v1/allocations").json()["allocations"] == []


def test_health_names_backend_version_and_generation(agent):
    health = agent.client().get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["backend"] == "simulated"
    assert health["pool"] == "auth-pool"
    assert health["gpus"] == 8
    assert health["inventory_generation"] >= 1


def test_inventory_lists_nodes_and_gpus_with_stable_uuids(agent):
    first = agent.client().get("/v1/inventory").json()
    assert [n["name"] for n in first["nodes"]] == ["n01", "n02"]
    gpus = [g for n in first["nodes"] for g in n["accelerators"]]
    assert len(gpus) == 8 and len({g["uuid"] for g in gpus}) == 8
    assert {g["memory_mib"] for g in gpus} == {81920}
    assert [g["index"] for g in first["nodes"][0]["accelerators"]] == [0, 1, 2, 3]
    agent.restart()
    again = agent.client().get("/v1/inventory").json()
    assert again == first  # same uuids, same generation: nothing changed


def test_claim_is_idempotent_by_id(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    claim_id = str(uuid.uuid4())
    first = _claim(client, gpu["uuid"], 40, 20000, claim_id)
    assert first.status_code == 201
    assert first.json()["env"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "40"
    assert first.json()["env"]["CUDA_VISIBLE_DEVICES"] == gpu["uuid"]
    again = _claim(client, gpu["uuid"], 40, 20000, claim_id)
    assert again.status_code == 200
    assert again.json()["claimed_at"] == first.json()["claimed_at"]
    assert len(client.get("/v1/allocations").json()["allocations"]) == 1


def test_same_id_for_another_slice_is_a_conflict(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    claim_id = str(uuid.uuid4())
    assert _claim(client, gpu["uuid"], 40, 20000, claim_id).status_code == 201
    response = _claim(client, gpu["uuid"], 50, 20000, claim_id)
    assert response.status_code == 409
    assert response.json()["code"] == "id_in_use"
    assert response.json()["held"]["compute_units"] == 40


def test_a_slice_that_does_not_fit_is_409_with_what_is_free(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    assert _claim(client, gpu["uuid"], 70, 40000).status_code == 201
    response = _claim(client, gpu["uuid"], 31, 1000)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "does_not_fit"
    assert (body["free_compute_units"], body["free_memory_mib"]) == (30, 81920 - 40000)
    assert _claim(client, gpu["uuid"], 30, 41920).status_code == 201  # exactly what is left fits
    assert _claim(client, gpu["uuid"], 1, 1).status_code == 409


def test_memory_beyond_the_gpu_and_unknown_gpu_are_conflicts(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    too_big = _claim(client, gpu["uuid"], 10, 81921)
    assert too_big.status_code == 409 and "81920 MiB" in too_big.json()["detail"]
    unknown = _claim(client, "GPU-does-not-exist", 10, 100)
    assert unknown.status_code == 409 and unknown.json()["code"] == "gpu_unknown"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"compute_units": 0, "memory_mib": 1}, "compute_units"),
        ({"compute_units": 101, "memory_mib": 1}, "compute_units"),
        ({"compute_units": "50", "memory_mib": 1}, "compute_units"),
        ({"compute_units": True, "memory_mib": 1}, "compute_units"),
        ({"compute_units": 10.5, "memory_mib": 1}, "compute_units"),
        ({"compute_units": 10}, "memory_mib"),
        ({"compute_units": 10, "memory_mib": -5}, "memory_mib"),
        ({"compute_units": 10, "memory_mib": 5, "labels": ["x"]}, "labels"),
        ({"compute_units": 10, "memory_mib": 5, "priority": "high"}, "priority"),
    ],
)
def test_bad_claims_are_422_naming_the_field_and_hold_nothing(agent, body, field):
    client = agent.client()
    body = {"gpu_uuid": _first_gpu(client)["uuid"], **body}
    response = client.put(f"/v1/allocations/{uuid.uuid4()}", json=body)
    assert response.status_code == 422
    assert field in response.json()["errors"]
    assert client.get("/v1/allocations").json()["allocations"] == []


def test_bad_id_json_and_methods_are_clear_4xx(agent):
    client = agent.client()
    bad_id = client.put("/v1/allocations/not-a-uuid", json={})
    assert bad_id.status_code == 422 and "not a UUID" in bad_id.json()["detail"]
    bad_json = client.put(f"/v1/allocations/{uuid.uuid4()}", content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["detail"]
    assert client.post("/v1/inventory").status_code == 405
    assert client.get("/v1/nothing").status_code == 404


def test_release_is_idempotent_and_frees_the_room(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    claim_id = str(uuid.uuid4())
    assert _claim(client, gpu["uuid"], 100, 81920, claim_id).status_code == 201
    assert _claim(client, gpu["uuid"], 1, 1).status_code == 409
    first = client.delete(f"/v1/allocations/{claim_id}")
    assert first.status_code == 200 and first.json()["released"] is True
    second = client.delete(f"/v1/allocations/{claim_id}")
    assert second.status_code == 200 and second.json()["released"] is False
    assert _claim(client, gpu["uuid"], 100, 81920).status_code == 201


def test_claims_survive_a_crash(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    held = {str(uuid.uuid4()) for _ in range(3)}
    for claim_id in held:
        assert _claim(client, gpu["uuid"], 30, 1000, claim_id).status_code == 201
    client.close()
    agent.kill()  # SIGKILL: no chance to flush anything
    agent.start()
    client = agent.client()
    assert {c["id"] for c in client.get("/v1/allocations").json()["allocations"]} == held
    # The restarted agent still counts them: 90 units held, 11 more do not fit.
    assert _claim(client, gpu["uuid"], 11, 1).status_code == 409
    assert _claim(client, gpu["uuid"], 10, 1).status_code == 201


def test_racing_claims_never_overfill_a_gpu(agent):
    gpu_uuid = _first_gpu(agent.client())["uuid"]

    def claim(_):
        with agent.client() as client:
            return _claim(client, gpu_uuid, 10, 1000).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(claim, range(32)))
    assert codes.count(201) == 10
    assert codes.count(409) == 22
    held = agent.client().get("/v1/allocations").json()["allocations"]
    assert sum(c["compute_units"] for c in held) == 100


def test_metrics_follow_the_claims(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    claim_id = str(uuid.uuid4())
    body = {"gpu_uuid": gpu["uuid"], "compute_units": 50, "memory_mib": 40000, "labels": {"ocenter.io/simulate": "busy"}}
    assert client.put(f"/v1/allocations/{claim_id}", json=body).status_code == 201
    metrics = client.get("/v1/metrics").json()
    figures = {g["uuid"]: g for g in metrics["accelerators"]}
    busy, idle = figures[gpu["uuid"]], next(g for u, g in figures.items() if u != gpu["uuid"])
    assert 25 <= busy["utilization_percent"] <= 50
    assert 24000 <= busy["memory_used_mib"] <= 40000 + 420
    assert busy["power_watts"] > idle["power_watts"]
    assert idle["utilization_percent"] == 0 and idle["memory_used_mib"] == 0
    (claim,) = metrics["allocations"]
    assert claim["id"] == claim_id and 0 < claim["compute_units_used"] <= 50


def test_openapi_document_is_served_without_a_token(agent):
    document = httpx.get(f"{agent.url}/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {"/v1/health", "/v1/inventory", "/v1/allocations", "/v1/allocations/{id}", "/v1/metrics"}
    assert {"put", "delete"} <= set(document["paths"]["/v1/allocations/{id}"])


def test_latency_and_error_rate_knobs(agent):
    client = agent.client()
    assert client.put("/v1/faults", json={"latency_ms": 300}).status_code == 200
    started = time.monotonic()
    assert client.get("/v1/health").status_code == 200
    assert time.monotonic() - started >= 0.3
    client.put("/v1/faults", json={"latency_ms": 0, "error_rate": 1.0})
    failing = client.get("/v1/health")
    assert failing.status_code == 503 and "injected" in failing.json()["detail"]
    client.put("/v1/faults", json={"error_rate": 0})
    assert client.get("/v1/health").status_code == 200
    assert client.put("/v1/faults", json={"error_rate": 2}).status_code == 422


def test_unhealthy_gpu_knob_degrades_health_and_bumps_generation(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    before = client.get("/v1/inventory").json()["generation"]
    assert client.put("/v1/faults", json={"unhealthy_gpus": [gpu["uuid"]]}).status_code == 200
    health = client.get("/v1/health").json()
    assert health["status"] == "degraded" and health["inventory_generation"] == before + 1
    assert _first_gpu(client)["health"] == "unhealthy"
    refused = _claim(client, gpu["uuid"], 10, 10)
    assert refused.status_code == 409 and refused.json()["code"] == "gpu_unhealthy"
    assert client.put("/v1/faults", json={"unhealthy_gpus": ["GPU-nope"]}).status_code == 422


def test_refuse_connections_knob_closes_the_port_then_reopens(agent):
    client = agent.client()
    assert client.put("/v1/faults", json={"refuse_connections_seconds": 1.5}).status_code == 200
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{agent.url}/v1/openapi.json", timeout=2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{agent.url}/v1/openapi.json", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        pytest.fail("the agent did not take connections again")


def test_generation_grows_when_the_configuration_changes(agent):
    first = agent.client().get("/v1/inventory").json()["generation"]
    agent.set_fleet([a100_nodes(1, gpus=4)])
    agent.restart()
    inventory = agent.client().get("/v1/inventory").json()
    assert inventory["generation"] == first + 1
    assert len(inventory["nodes"]) == 1


def test_simulated_claims_are_busy_or_idle_as_their_labels_say_and_every_env_names_its_claim(agent):
    client = agent.client()
    gpu = _first_gpu(client)["uuid"]
    busy, idle = str(uuid.uuid4()), str(uuid.uuid4())
    for claim_id, mode in ((busy, "busy"), (idle, "idle")):
        answer = client.put(f"/v1/allocations/{claim_id}", json={"gpu_uuid": gpu, "compute_units": 25, "memory_mib": 4096,
                                                                   "labels": {"ocenter.io/simulate": mode}})  # fmt: skip
        assert answer.json()["env"]["OCENTER_CLAIM_ID"] == claim_id
    claims = {c["id"]: c for c in client.get("/v1/metrics").json()["allocations"]}
    assert claims[busy]["compute_units_used"] > 0 and claims[busy]["processes"] == 1 and claims[busy]["last_busy_at"]
    assert (claims[idle]["compute_units_used"], claims[idle]["processes"], claims[idle]["last_busy_at"]) == (0, 0, None)


def test_the_outside_use_knob_is_reported_and_its_memory_is_taken(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    assert client.put("/v1/faults", json={"outside_use_mib": {gpu["uuid"]: 60_000}}).status_code == 200
    figures = next(g for g in client.get("/v1/metrics").json()["accelerators"] if g["uuid"] == gpu["uuid"])
    assert figures["outside_memory_mib"] == 60_000 and figures["memory_used_mib"] >= 60_000
    refused = _claim(client, gpu["uuid"], mib=gpu["memory_mib"] - 60_000 + 1)
    assert refused.status_code == 409 and refused.json()["outside_memory_mib"] == 60_000
    assert _claim(client, gpu["uuid"], mib=gpu["memory_mib"] - 60_000).status_code == 201
    assert client.put("/v1/faults", json={"outside_use_mib": {"GPU-nope": 1}}).status_code == 422


def test_a_batch_claims_each_as_its_own_call_would_and_stays_idempotent(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    claims = [
        {"id": i, "gpu_uuid": gpu["uuid"], "compute_units": 30, "memory_mib": 1024, "labels": {"n": str(n)}} for n, i in enumerate(ids)
    ]
    first = client.post("/v1/claims", json={"claims": claims})
    assert first.status_code == 200
    results = first.json()["results"]
    # 30 units each: three fit on the GPU, the fourth is refused as a single claim would be, with what is free.
    assert [r["status"] for r in results] == [201, 201, 201, 409]
    assert results[3]["body"]["code"] == "does_not_fit" and results[3]["body"]["free_compute_units"] == 10
    assert results[0]["body"]["id"] == ids[0] and results[0]["body"]["env"]
    again = client.post("/v1/claims", json={"claims": claims[:3]}).json()["results"]
    assert [r["status"] for r in again] == [200, 200, 200]  # the same claims again: held already, not twice
    assert len(client.get("/v1/allocations").json()["allocations"]) == 3
    released = client.post("/v1/releases", json={"ids": [*ids[:2], ids[3]]}).json()["results"]
    assert [r["body"]["released"] for r in released] == [True, True, False]
    assert [c["id"] for c in client.get("/v1/allocations").json()["allocations"]] == [ids[2]]


@pytest.mark.parametrize("path,body", [("/v1/claims", {"claims": []}), ("/v1/claims", [1]), ("/v1/releases", {"ids": "x"}),
                                       ("/v1/releases", {"ids": ["a"] * 501})])  # fmt: skip
def test_a_bad_batch_is_400_and_holds_nothing(agent, path, body):
    client = agent.client()
    response = client.post(path, json=body)
    assert response.status_code == 400 and "1 to 500" in response.json()["detail"]
    assert client.get("/v1/allocations").json()["allocations"] == []


def test_a_bad_item_in_a_batch_is_answered_alone(agent):
    client = agent.client()
    gpu = _first_gpu(client)
    good = {"id": str(uuid.uuid4()), "gpu_uuid": gpu["uuid"], "compute_units": 10, "memory_mib": 1}
    results = client.post("/v1/claims", json={"claims": [{"gpu_uuid": gpu["uuid"]}, {**good, "compute_units": 0}, good]}).json()["results"]
    assert [r["status"] for r in results] == [400, 422, 201]
