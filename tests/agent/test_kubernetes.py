"""
The kubernetes backend, as a real agent process over real HTTP, against a fake Kubernetes API server process
(tests/kubernetes_api.py) that answers with recorded objects in the shapes Kubernetes and HAMi write. The API server
(and HAMi, and the GPUs) is the only thing faked.
"""

import copy
import time
import uuid

import pytest

from pools.agent.backends.kubernetes import decode_allocated, decode_register
from pools.agent.config import ConfigError, load_config
from tests.agents import AgentExited, AgentProcess
from tests.kubernetes_api import ClusterProcess
from tests.servers import self_signed_certificate

pytest.importorskip("kubernetes")

A0, A1, A2 = (
    "GPU-5b1d7c0e-2f4a-9e83-1c6d-0a7f3e9b4d21",
    "GPU-8e2f4a6c-1b3d-4c5e-9f7a-2d4b6c8e0f13",
    "GPU-c3a9e1f7-5d2b-4e6a-8c0f-1e3a5c7e9b02",
)
V0 = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
N0 = "Ascend910B3-7c1e9f3a-0000-0000-0000-000000000000"
PLAIN = "plain-node-1/nvidia.com/gpu/{}"


def agent_toml(kubeconfig, *, exporter: str = "", quotas: bool = True) -> str:
    return f"""
[agent]
pool = "bj-k8s"
backend = "kubernetes"

[kubernetes]
kubeconfig = "{kubeconfig}"
poll_seconds = 0.2
request_timeout_seconds = 2
manage_resource_quotas = {"true" if quotas else "false"}
exporter_urls = [{f'"{exporter}"' if exporter else ""}]

[kubernetes.templates]
Ascend910B3 = [{{name = "vir10_3c_32g", compute_units = 50, memory_mib = 32768}},
               {{name = "vir05_1c_16g", compute_units = 25, memory_mib = 16384}}]
"""


@pytest.fixture
def cluster(tmp_path):
    cluster = ClusterProcess(tmp_path).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def agent(tmp_path, cluster):
    agent = AgentProcess(tmp_path, "bj-k8s", [], toml=agent_toml(cluster.kubeconfig(), exporter=f"{cluster.url}/metrics")).start()
    yield agent
    agent.stop()


def gpus_of(inventory: dict) -> dict:
    return {g["uuid"]: {**g, "node": n["name"]} for n in inventory["nodes"] for g in n["accelerators"]}


def claim(client, gpu_uuid, units, mib, tenant="acme"):
    claim_id = str(uuid.uuid4())
    answer = client.put(f"/v1/allocations/{claim_id}", json={"gpu_uuid": gpu_uuid, "compute_units": units, "memory_mib": mib,
                                                              "labels": {"tenant": tenant}})  # fmt: skip
    return claim_id, answer


def until(check, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("not within the time")


def run_pod(cluster, claim_id: str, spec: dict, *, allocated: str, name: str = "job-0"):
    """What the workload and HAMi do with a launch spec: a pod with its labels, annotations and resources, placed and annotated."""
    objects = cluster.objects_now()
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": spec["namespace"], "labels": spec["labels"],
                     "annotations": {**spec["annotations"], "hami.io/vgpu-devices-allocated": allocated}},
        "spec": {"nodeName": spec["nodeSelector"]["kubernetes.io/hostname"],
                 "containers": [{"name": "main", "resources": spec["resources"]}]},
        "status": {"phase": "Running"},
    }  # fmt: skip
    cluster.put("pods", [*objects["pods"], pod])


def test_inventory_from_hamis_annotations_and_whole_gpus_without_hami(agent, cluster):
    with agent.client() as client:
        gpus = gpus_of(client.get("/v1/inventory").json())
        health = client.get("/v1/health").json()
    # HAMi NVIDIA (JSON register): model without HAMi's "NVIDIA-" prefix, memory, shares → fractional, health.
    assert gpus[A0]["model"] == "NVIDIA A100-SXM4-80GB" and gpus[A0]["memory_mib"] == 81920
    assert gpus[A0]["enforcement"] == "hami-core" and gpus[A0]["fractional"] and gpus[A0]["node"] == "gpu-node-1"
    # Go's omitempty leaves a false health out of the annotation: that device is unhealthy.
    assert gpus[A2]["health"] == "unhealthy" and "HAMi reports" in gpus[A2]["health_reason"]
    # The older colon form.
    assert gpus[V0]["model"] == "Tesla V100-PCIE-32GB" and gpus[V0]["memory_mib"] == 32768
    # Ascend from hami.io/node-register-Ascend910B3, with the pool's templates smallest first.
    assert gpus[N0]["vendor"] == "Huawei" and gpus[N0]["model"] == "Ascend910B3"
    assert [t["name"] for t in gpus[N0]["templates"]] == ["vir05_1c_16g", "vir10_3c_32g"]
    # Without HAMi: allocatable nvidia.com/gpu, whole only, model and memory from GPU feature discovery's labels.
    plain = [g for g in gpus.values() if g["node"] == "plain-node-1"]
    assert len(plain) == 4 and all(not g["fractional"] and g["enforcement"] == "exclusive" and g["memory_mib"] == 81559 for g in plain)
    # The CPU-only node is not in the inventory; 3 + 1 + 2 + 4 devices.
    assert len(gpus) == 10 and "cpu-node-1" not in {g["node"] for g in gpus.values()}
    assert health["kubernetes"]["reachable"] and health["backend"] == "kubernetes"
    # Every poll lists from the API server's watch cache (resourceVersion 0), not by a quorum read of etcd.
    lists = cluster.writes()["lists"]
    assert lists["/api/v1/nodes"]["resourceVersion"] == "0" and lists["/api/v1/pods"]["resourceVersion"] == "0"


def test_a_claim_answers_the_launch_spec_hami_places_by(agent):
    with agent.client() as client:
        claim_id, answer = claim(client, A0, 25, 8192)
    assert answer.status_code == 201, answer.text
    spec = answer.json()["launch"]
    assert spec == {
        "namespace": "ocenter-acme",
        "labels": {"ocenter.io/claim": claim_id},
        "annotations": {"nvidia.com/use-gpuuuid": A0},
        "nodeSelector": {"kubernetes.io/hostname": "gpu-node-1"},
        "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "25"}},
    }
    assert answer.json()["env"] == {"OCENTER_CLAIM_ID": claim_id}


def test_whole_gpus_without_hami_and_ascend_templates(agent):
    with agent.client() as client:
        _, fraction = claim(client, PLAIN.format(1), 50, 1024)
        _, whole = claim(client, PLAIN.format(1), 100, 81559)
        _, odd = claim(client, N0, 20, 10000)
        _, vnpu = claim(client, N0, 25, 16384)
    assert fraction.status_code == 409 and fraction.json()["code"] == "whole_gpu_only"
    assert whole.status_code == 201 and whole.json()["launch"]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert odd.status_code == 409 and odd.json()["code"] == "not_a_template" and "vir05_1c_16g" in odd.json()["detail"]
    assert vnpu.status_code == 201 and vnpu.json()["template"] == "vir05_1c_16g"
    assert vnpu.json()["launch"]["resources"]["limits"] == {"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "16384"}
    assert vnpu.json()["launch"]["annotations"] == {"hami.io/use-Ascend910B3-uuid": N0}


def test_outside_use_is_counted_taken_and_shown(agent, cluster):
    with agent.client() as client:
        figures = {g["uuid"]: g for g in client.get("/v1/metrics").json()["accelerators"]}
        # 20,000 MiB and 30 cores of A1 are a notebook's that no claim names; a finished pod's share on A0 is not counted.
        assert figures[A1]["outside_memory_mib"] == 20000 and figures[A1]["outside_processes"][0]["pod"] == "research/notebook-7f9c"
        assert figures[A0]["outside_memory_mib"] == 0
        _, too_big = claim(client, A1, 10, 70000)
        assert too_big.status_code == 409 and too_big.json()["outside_memory_mib"] == 20000
        _, too_many_cores = claim(client, A1, 80, 1000)
        assert too_many_cores.status_code == 409 and too_many_cores.json()["free_compute_units"] == 70
        # V0 has 2 shares; a pod no claim names holds one: one claim fits, the next does not.
        _, first = claim(client, V0, 10, 1000)
        _, second = claim(client, V0, 10, 1000)
        assert first.status_code == 201 and second.status_code == 409 and "shares are all taken" in second.json()["detail"]
        # Without HAMi, a pod holding one of plain-node-1's 4 GPUs takes one: three whole claims fit, not four.
        answers = [claim(client, PLAIN.format(i), 100, 81559)[1].status_code for i in range(4)]
        assert sorted(answers) == [201, 201, 201, 409]


def test_a_claims_pod_is_matched_and_its_utilization_read_from_hamis_exporter(agent, cluster):
    with agent.client() as client:
        claim_id, answer = claim(client, A0, 25, 8192)
        run_pod(cluster, claim_id, answer.json()["launch"], allocated=f"{A0},NVIDIA,8192,25:;")
        pod = f'namespace="ocenter-acme",pod="job-0",container="main",vdevice_index="0",device_uuid="{A0}"'
        text = "\n".join([
            f'hami_host_gpu_utilization_ratio{{device_uuid="{A0}",node="gpu-node-1"}} 22',
            f'hami_host_gpu_memory_used_bytes{{device_uuid="{A0}",node="gpu-node-1"}} 6442450944',
            f"hami_vgpu_memory_used_bytes{{{pod}}} 6442450944",
            f"hami_container_device_utilization_ratio{{{pod}}} 22",
            f"hami_container_last_kernel_elapsed_seconds{{{pod}}} 3",
        ])  # fmt: skip
        cluster.put("exporter", {"text": text})
        time.sleep(2.1)  # the exporter's last read is reused for 2 s

        def claimed():
            metrics = client.get("/v1/metrics").json()
            mine = [c for c in metrics["allocations"] if c["id"] == claim_id]
            return (mine, metrics) if mine and mine[0].get("processes") == 1 else None

        mine, metrics = until(claimed)
    gpu = next(g for g in metrics["accelerators"] if g["uuid"] == A0)
    assert gpu["utilization_percent"] == 22 and gpu["memory_used_mib"] == 6144 and gpu["outside_memory_mib"] == 0
    assert mine[0]["compute_units_used"] == 22 and mine[0]["memory_used_mib"] == 6144
    assert time.time() - 10 < mine[0]["last_busy_at"] <= time.time() - 2


def test_without_an_exporter_a_claims_use_is_unknown_not_idle(tmp_path, cluster):
    agent = AgentProcess(tmp_path, "bj-k8s", [], toml=agent_toml(cluster.kubeconfig(), quotas=False)).start()
    try:
        with agent.client() as client:
            claim_id, _ = claim(client, A0, 25, 8192)
            metrics = client.get("/v1/metrics").json()
    finally:
        agent.stop()
    mine = next(c for c in metrics["allocations"] if c["id"] == claim_id)
    assert "exporter_urls" in mine["error"] and "compute_units_used" not in mine
    gpu = next(g for g in metrics["accelerators"] if g["uuid"] == A0)
    assert gpu["utilization_percent"] is None and gpu["memory_used_mib"] == 8192


def test_a_node_going_not_ready_takes_its_gpus_out_and_back(agent, cluster):
    with agent.client() as client:
        before = client.get("/v1/inventory").json()["generation"]
        objects = cluster.objects_now()
        nodes = copy.deepcopy(objects["nodes"])
        ready = next(c for c in nodes[0]["status"]["conditions"] if c["type"] == "Ready")
        ready.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
        cluster.put("nodes", nodes)
        inventory = until(lambda: (i := client.get("/v1/inventory").json())["generation"] > before and i)
        gpus = gpus_of(inventory)
        assert gpus[A0]["health"] == "unhealthy" and "NotReady: Kubelet stopped posting" in gpus[A0]["health_reason"]
        assert gpus[V0]["health"] == "healthy"
        _, refused = claim(client, A0, 10, 1000)
        assert refused.status_code == 409 and refused.json()["code"] == "gpu_unhealthy"
        assert client.get("/v1/health").json()["kubernetes"]["not_ready"] == ["gpu-node-1"]
        cluster.put("nodes", objects["nodes"])
        until(lambda: gpus_of(client.get("/v1/inventory").json())[A0]["health"] == "healthy")


def test_the_api_server_unreachable_keeps_the_inventory_and_takes_no_claims(agent, cluster):
    with agent.client() as client:
        held_id, _ = claim(client, A0, 25, 8192)
        cluster.stop()
        health = until(lambda: not (h := client.get("/v1/health").json())["kubernetes"]["reachable"] and h)
        assert health["status"] == "degraded" and "cannot reach" in health["detail"]
        gpus = gpus_of(client.get("/v1/inventory").json())
        assert len(gpus) == 10 and all(g["health"] == "unhealthy" and "does not answer" in g["health_reason"] for g in gpus.values())
        _, refused = claim(client, V0, 10, 1000)
        assert refused.status_code == 409
        # The claim held is kept: the workload runs on; oCenter can still read and release it.
        assert client.get(f"/v1/allocations/{held_id}").status_code == 200
        cluster.start()  # the same port
        until(lambda: client.get("/v1/health").json()["kubernetes"]["reachable"])
        assert gpus_of(client.get("/v1/inventory").json())[A0]["health"] == "healthy"
        _, accepted = claim(client, V0, 10, 1000)
        assert accepted.status_code == 201


def test_resource_quotas_follow_the_claims_of_each_tenant_namespace(agent, cluster):
    with agent.client() as client:
        a, _ = claim(client, A0, 25, 8192)
        claim(client, A0, 50, 16384)
        claim(client, N0, 25, 16384, tenant="globex")
        quotas = {q["metadata"]["namespace"]: q for q in cluster.writes()["quotas"]}
        acme = quotas["ocenter-acme"]["spec"]["hard"]
        assert acme["requests.nvidia.com/gpu"] == "2" and acme["requests.nvidia.com/gpumem"] == "24576"
        assert acme["requests.nvidia.com/gpucores"] == "75" and acme["requests.huawei.com/Ascend910B3"] == "0"
        globex = quotas["ocenter-globex"]["spec"]["hard"]
        assert globex["requests.huawei.com/Ascend910B3"] == "1" and globex["requests.huawei.com/Ascend910B3-memory"] == "16384"
        assert globex["requests.nvidia.com/gpu"] == "0"
        assert quotas["ocenter-acme"]["metadata"]["labels"]["ocenter.io/pool"] == "bj-k8s"
        client.delete(f"/v1/allocations/{a}")
        acme = {q["metadata"]["namespace"]: q for q in cluster.writes()["quotas"]}["ocenter-acme"]["spec"]["hard"]
        assert acme["requests.nvidia.com/gpu"] == "1" and acme["requests.nvidia.com/gpucores"] == "50"
        # A tenant whose namespace does not exist: the claim stands, the health says which quota could not be written.
        claim(client, V0, 10, 1000, tenant="initech")
        assert "ocenter-initech" in client.get("/v1/health").json()["kubernetes"]["resource_quotas"]


def test_an_agent_the_api_server_refuses_says_to_check_its_rbac(tmp_path, cluster):
    agent = AgentProcess(tmp_path, "bj-k8s", [], toml=agent_toml(cluster.kubeconfig(token="not-the-token"), quotas=False)).start()
    try:
        with agent.client() as client:
            health = client.get("/v1/health").json()
    finally:
        agent.stop()
    assert health["status"] == "degraded" and "401" in health["detail"] and "RBAC" in health["detail"]


def test_in_a_pod_the_agent_reaches_the_api_server_over_tls_with_its_service_account(tmp_path):
    """No kubeconfig: the API server's address from KUBERNETES_SERVICE_HOST/PORT, the token and CA from the mounted account."""
    cert, key = self_signed_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = self_signed_certificate(tmp_path / "other")
    cluster = ClusterProcess(tmp_path, tls=(cert, key)).start()
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(cluster.token)  # as the kubelet writes it: no newline
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cluster.port)}
    toml = agent_toml("", quotas=False).replace('kubeconfig = ""', f'service_account_dir = "{account}"')

    def health_and_gpus(ca) -> tuple[dict, dict]:
        (account / "ca.crt").write_bytes(ca.read_bytes())
        agent = AgentProcess(tmp_path, "bj-k8s", [], toml=toml, env=env).start()
        try:
            with agent.client() as client:
                return client.get("/v1/health").json(), gpus_of(client.get("/v1/inventory").json())
        finally:
            agent.stop()

    try:
        health, gpus = health_and_gpus(cert)
        assert health["kubernetes"] == {**health["kubernetes"], "api": cluster.url, "reachable": True}
        assert len(gpus) == 10 and gpus[A0]["health"] == "healthy"
        # The account's CA is the one trusted: an API server it did not sign is not reached.
        health, gpus = health_and_gpus(other_ca)
        assert health["status"] == "degraded" and "CERTIFICATE_VERIFY_FAILED" in health["detail"] and not gpus
    finally:
        cluster.stop()
    # Outside a pod (no service host, no token): the agent stops at once, saying where it looked and what to set.
    with pytest.raises(AgentExited) as exited:
        AgentProcess(tmp_path, "bj-k8s", [], toml=toml.replace(str(account), str(tmp_path / "none"))).start()
    assert exited.value.code == 2 and str(tmp_path / "none") in exited.value.output and "set [kubernetes] kubeconfig" in exited.value.output


def test_hamis_annotation_forms():
    legacy = decode_register(
        "GPU-1,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:GPU-2,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,false:"
    )
    assert [(d["id"], d["count"], d["devmem"], d["health"], d["index"]) for d in legacy] == [
        ("GPU-1", 10, 32768, True, 0), ("GPU-2", 10, 32768, False, 1)]  # fmt: skip
    assert decode_register('[{"id":"GPU-3","index":2,"count":4,"devmem":1000,"devcore":100,"type":"NVIDIA-x"}]')[0]["health"] is False
    # Index 0 is left out by omitempty, wherever the device stands in the list; a list without indexes is in order.
    listed = decode_register('[{"id":"GPU-5","index":1,"health":true},{"id":"GPU-4","health":true}]')
    assert [(d["id"], d["index"]) for d in listed] == [("GPU-5", 1), ("GPU-4", 0)]
    assert [d["index"] for d in decode_register('[{"id":"GPU-6"},{"id":"GPU-7"}]')] == [0, 1]
    with pytest.raises(ValueError):
        decode_register("GPU-1,10,32768:")
    assert decode_allocated("GPU-1,NVIDIA,3000,0:;GPU-1,NVIDIA,5000,20:GPU-2,NVIDIA,1,1:;") == [
        ("GPU-1", 3000, 0), ("GPU-1", 5000, 20), ("GPU-2", 1, 1)]  # fmt: skip


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('namespace = "gpu-jobs"', "must contain {tenant}"),
        ('kubeconfig = "/nowhere/kubeconfig"', "no such file"),
        ("service_account_dir = 1", "'service_account_dir' must be a string"),
        ("poll_seconds = 0", "'poll_seconds' must be a number"),
        ('exporter_urls = ["ftp://x"]', "http(s) URLs"),
        ("whatever = 1", "unknown keys ['whatever']"),
        ('templates = {Ascend910B3 = [{name = "big", compute_units = 120, memory_mib = 1}]}', "from 1 to 100"),
    ],
)
def test_configuration_errors_say_what_to_change(tmp_path, table, message):
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\npool = "p"\nbackend = "kubernetes"\n\n[kubernetes]\n{table}\n')
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_config(path)
