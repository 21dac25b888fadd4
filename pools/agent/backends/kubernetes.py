"""
The GPUs of a Kubernetes cluster, as HAMi shares them (``backend = "kubernetes"``). The official ``kubernetes``
client is imported here only, when a pool's file selects this backend (``pip install 'ocenter[agent-kubernetes]'``).

- Inventory, read every ``poll_seconds`` from the Nodes: HAMi's device annotations (``hami.io/node-nvidia-register``
  for NVIDIA GPUs, ``hami.io/node-register-<type>`` for Ascend NPUs: per device its UUID, number of shares, memory,
  cores, type and health, in HAMi's JSON or its older ``a,b,c:`` form); on a node without them, whole GPUs from
  allocatable ``nvidia.com/gpu`` (model and memory from GPU feature discovery's labels). A node that is NotReady or
  cordoned takes no new claims: its GPUs are reported unhealthy, with the reason. So are all of them while the API
  server does not answer (the last inventory read is kept; nothing is forgotten).
- A claim is not a process the agent starts: its answer carries the launch spec a workload applies to its pod
  (resources, the device's UUID annotation, a node selector, the tenant's namespace and ``ocenter.io/claim``).
  With ``manage_resource_quotas``, each tenant namespace's ResourceQuota ``ocenter-<pool>`` holds exactly what its
  claims hold, so a namespace cannot take more shares than oCenter granted.
- Usage, from the Pods: a pod's ``hami.io/vgpu-devices-allocated`` (``hami.io/<type>-devices-allocated``) says which
  devices HAMi gave it and how much of each. A pod labelled with a claim this agent holds on that device is the
  claim's; any other pod holding shares is outside use, counted as taken. Utilization, where ``exporter_urls`` name
  HAMi's vGPU monitor: ``hami_host_gpu_utilization_ratio``, ``hami_vgpu_memory_used_bytes``,
  ``hami_container_device_utilization_ratio`` and ``hami_container_last_kernel_elapsed_seconds``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pools.agent import COMPUTE_UNITS_PER_GPU
from pools.agent.backends.base import Backend, Gpu, Node, Refused, Unavailable
from pools.agent.exposition import parse as parse_exposition

log = logging.getLogger("pools.agent.kubernetes")

MIB = 1024 * 1024
CLAIM_LABEL = "ocenter.io/claim"
POOL_LABEL = "ocenter.io/pool"
NVIDIA_REGISTER = "hami.io/node-nvidia-register"
REGISTER_PREFIX = "hami.io/node-register-"  # + a device type: hami.io/node-register-Ascend910B3
NVIDIA_ALLOCATED = "hami.io/vgpu-devices-allocated"
NVIDIA = "NVIDIA"  # the device type of HAMi's NVIDIA GPUs; every other type is named by its register annotation
WHOLE = "whole"  # a GPU of a node without HAMi: claimed whole, through nvidia.com/gpu
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
# /v1/metrics asks for every GPU's figures in turn: the exporters are read once for all of them.
EXPORTER_REUSE_SECONDS = 2.0


@dataclass(frozen=True)
class Device:
    """What a GPU is to Kubernetes beside what the inventory says: its type, how many pods may share it, its cores."""

    kind: str  # NVIDIA, an Ascend type (Ascend910B3), or WHOLE
    shares: int
    cores: int

    def units(self, cores: int) -> int:
        """Cores as HAMi counts them on this device, in compute units (100 are the device)."""
        return -(-cores * COMPUTE_UNITS_PER_GPU // self.cores)


@dataclass(frozen=True)
class Holder:
    """A container HAMi gave a share of a device: its pod, the claim the pod names (if any), and the share."""

    pod: str  # namespace/name
    claim: str | None
    memory_mib: int
    cores: int


@dataclass
class Snapshot:
    """The cluster as last read: the pool's nodes and their GPUs, and who holds what on them."""

    nodes: list = field(default_factory=list)  # (name, problem, [Gpu])
    devices: dict = field(default_factory=dict)  # uuid → Device
    holders: dict = field(default_factory=dict)  # uuid → [Holder]
    whole_taken: dict = field(default_factory=dict)  # node → [(pod, claim)] for each nvidia.com/gpu a pod requests
    read_at: float = 0.0


def decode_register(value: str) -> list[dict]:
    """HAMi's device register annotation, in either of its forms, as dicts of id, index, count, devmem, devcore, type, health.

    JSON (HAMi 2.5 on): ``[{"id": …, "index": 1, "count": 10, "devmem": 81920, "devcore": 100, "type": …, "health": true}]``,
    where a false ``health`` and an index 0 are left out (Go's omitempty); a list with no index at all is indexed in order.
    The older form: ``id,count,devmem,devcore,type,numa,health[,index,mode]:``.
    """
    value = value.strip()
    if value.startswith("["):
        devices = json.loads(value)
        if not isinstance(devices, list) or not all(isinstance(d, dict) and d.get("id") for d in devices):
            raise ValueError("a JSON list of devices, each with its id")
        indexed = any("index" in d for d in devices)
        return [{"id": str(d["id"]), "index": int(d.get("index", 0)) if indexed else position, "count": int(d.get("count") or 1),
                 "devmem": int(d.get("devmem") or 0), "devcore": int(d.get("devcore") or 0), "type": str(d.get("type") or ""),
                 "health": bool(d.get("health", False))} for position, d in enumerate(devices)]  # fmt: skip
    devices = []
    for position, part in enumerate(p for p in value.split(":") if p):
        items = part.split(",")
        if len(items) not in (7, 9):
            raise ValueError(f"a device has 7 or 9 fields, not {len(items)}: {part!r}")
        index = int(items[7]) if len(items) == 9 else position
        devices.append({"id": items[0], "index": index, "count": int(items[1]), "devmem": int(items[2]), "devcore": int(items[3]),
                        "type": items[4], "health": items[6].lower() == "true"})  # fmt: skip
    return devices


def decode_allocated(value: str) -> list[tuple[str, int, int]]:
    """A pod's ``…-devices-allocated`` annotation: ``(uuid, MiB, cores)`` for each device of each container.

    Containers end with ``;``, devices with ``:`` (``GPU-…,NVIDIA,8192,25:;``); an empty container is skipped.
    """
    held = []
    for container in value.split(";"):
        for device in container.split(":"):
            items = device.split(",")
            if len(items) >= 4 and items[0]:
                held.append((items[0], int(items[2]), int(items[3])))
    return held


def node_problem(node: dict) -> str:
    """Why a node takes no new claims ("" when it does): NotReady, or cordoned."""
    name = node["metadata"]["name"]
    ready = next((c for c in node.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        why = (ready or {}).get("message") or (ready or {}).get("reason") or "no Ready condition"
        return f"node {name} is NotReady: {why}"[:200]
    if node.get("spec", {}).get("unschedulable"):
        return f"node {name} is cordoned (unschedulable)"
    return ""


class KubernetesBackend(Backend):
    name = "kubernetes"

    def __init__(self, config):
        try:
            from kubernetes import client
            from kubernetes import config as kube_config
            from kubernetes.config.incluster_config import InClusterConfigLoader
        except ImportError:
            raise Unavailable("the kubernetes backend needs the Kubernetes client: pip install 'ocenter[agent-kubernetes]'") from None
        self.pool = config.pool
        self.settings = settings = config.kubernetes
        configuration = client.Configuration()
        try:
            if settings.kubeconfig:
                kube_config.load_kube_config(config_file=settings.kubeconfig, context=settings.context or None,
                                             client_configuration=configuration, persist_config=False)  # fmt: skip
            else:  # the token is read again as the kubelet rotates it (a bound token lives an hour)
                account = Path(settings.service_account_dir)
                InClusterConfigLoader(token_filename=str(account / "token"), cert_filename=str(account / "ca.crt"),
                                      try_refresh_token=True).load_and_set(configuration)  # fmt: skip
        except kube_config.ConfigException as exc:
            where = settings.kubeconfig or (f"the pod's service account ({settings.service_account_dir}, KUBERNETES_SERVICE_HOST); "
                                            "outside a cluster, set [kubernetes] kubeconfig")  # fmt: skip
            raise Unavailable(f"cannot read the cluster's address and credentials from {where}: {exc}") from None
        configuration.retries = 0  # an API server that does not answer is reported at once; the next poll tries again
        self.host = configuration.host
        self.api = client.CoreV1Api(client.ApiClient(configuration))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._quota_lock = threading.Lock()
        self._snapshot = Snapshot()
        self._unreachable = ""  # why the last read failed ("" when it worked)
        self._claims: list = []
        self._quotas_written: dict[str, dict] = {}  # namespace → the hard limits last written there
        self._quota_problem = ""
        self._exporter_problem = ""
        self._last_busy: dict[str, float] = {}
        self._exported: tuple[float, dict | None] = (0.0, None)  # (when, figures): one scrape serves a whole /v1/metrics
        self._read()
        if settings.manage_resource_quotas and not self._unreachable:
            self._quotas_written = self._managed_quotas()

    # --- reading the cluster -------------------------------------------------

    def _get(self, call, **kwargs) -> dict:
        answer = call(_preload_content=False, _request_timeout=self.settings.request_timeout_seconds, **kwargs)
        return json.loads(answer.data)

    def _read(self) -> bool:
        """Read nodes and pods into a new snapshot; on failure keep the last one and say why. Whether it worked."""
        try:
            # resourceVersion 0: from the API server's watch cache, as informers relist, not a quorum read of etcd every poll.
            nodes = self._get(self.api.list_node, label_selector=self.settings.node_selector or None, resource_version="0")["items"]
            pods = self._get(self.api.list_pod_for_all_namespaces, field_selector=LIVE_PODS, resource_version="0")["items"]
        except Exception as exc:  # the API server's refusal, a timeout, a refused connection: all mean "not now"
            detail = _explain(exc, self.host)
            if detail != self._unreachable:
                log.warning("the Kubernetes API does not answer: %s", detail)
            self._unreachable = detail
            return False
        snapshot = self._snapshot_of(nodes, pods)
        with self._lock:
            self._snapshot, self._unreachable = snapshot, ""
        return True

    def _snapshot_of(self, nodes: list[dict], pods: list[dict]) -> Snapshot:
        snapshot = Snapshot(read_at=time.time())
        for node in nodes:
            name, problem = node["metadata"]["name"], node_problem(node)
            try:
                gpus = self._node_gpus(node, problem, snapshot.devices)
            except (ValueError, TypeError, KeyError) as exc:  # an annotation HAMi did not write: the node's GPUs are left out
                log.warning("node %s: cannot read its device annotation: %s", name, exc)
                continue
            if gpus:
                snapshot.nodes.append((name, problem, gpus))
        node_names = {name for name, _, _ in snapshot.nodes}
        kinds = {d.kind for d in snapshot.devices.values()} - {WHOLE, NVIDIA}
        for pod in pods:
            meta = pod["metadata"]
            annotations, where = meta.get("annotations") or {}, f"{meta.get('namespace')}/{meta['name']}"
            claim = (meta.get("labels") or {}).get(CLAIM_LABEL)
            for key in (NVIDIA_ALLOCATED, *(f"hami.io/{kind}-devices-allocated" for kind in kinds)):
                if annotations.get(key):
                    try:
                        for uuid, mib, cores in decode_allocated(annotations[key]):
                            snapshot.holders.setdefault(uuid, []).append(Holder(where, claim, mib, cores))
                    except ValueError:
                        log.warning("pod %s: cannot read %s", where, key)
            node = (pod.get("spec") or {}).get("nodeName")
            if node in node_names and not annotations.get(NVIDIA_ALLOCATED):
                wanted = sum(_whole_gpus(c) for c in (pod.get("spec") or {}).get("containers") or [])
                snapshot.whole_taken.setdefault(node, []).extend([(where, claim)] * wanted)
        return snapshot

    def _node_gpus(self, node: dict, problem: str, devices: dict) -> list[Gpu]:
        meta = node["metadata"]
        name, annotations, labels = meta["name"], meta.get("annotations") or {}, meta.get("labels") or {}
        registers = [(NVIDIA, annotations[NVIDIA_REGISTER])] if annotations.get(NVIDIA_REGISTER) else []
        registers += [(key[len(REGISTER_PREFIX) :], value) for key, value in annotations.items() if key.startswith(REGISTER_PREFIX)]
        gpus = []
        for kind, value in registers:
            for d in decode_register(value):
                devices[d["id"]] = Device(kind, max(1, d["count"]), d["devcore"] or COMPUTE_UNITS_PER_GPU)
                templates = self.settings.templates.get(kind, ())
                health = problem or ("" if d["health"] else "HAMi reports the device unhealthy")
                gpus.append(Gpu(
                    uuid=d["id"], index=d["index"], node=name, vendor="NVIDIA" if kind == NVIDIA else _vendor(kind),
                    model=d["type"].removeprefix("NVIDIA-") if kind == NVIDIA else kind, memory_mib=d["devmem"], tdp_watts=0,
                    healthy=not health, health_reason=health, enforcement="hami-core" if kind == NVIDIA else "hami-vnpu",
                    fractional=d["count"] > 1, templates=tuple(t for t in templates if t.memory_mib <= d["devmem"]),
                ))  # fmt: skip
        if registers:
            return gpus
        count = int((node.get("status", {}).get("allocatable") or {}).get("nvidia.com/gpu") or 0)
        memory = int(labels.get("nvidia.com/gpu.memory") or self.settings.whole_gpu_memory_mib or 0)
        if count and not memory:
            raise ValueError("its GPUs' memory is unknown: label nvidia.com/gpu.memory (GPU feature discovery) or set whole_gpu_memory_mib")
        for index in range(count):
            uuid = f"{name}/nvidia.com/gpu/{index}"
            devices[uuid] = Device(WHOLE, 1, COMPUTE_UNITS_PER_GPU)
            model = labels.get("nvidia.com/gpu.product", "nvidia.com/gpu")
            gpus.append(Gpu(uuid=uuid, index=index, node=name, vendor="NVIDIA", model=model,
                            memory_mib=memory, tdp_watts=0, healthy=not problem, health_reason=problem, enforcement="exclusive",
                            fractional=False))  # fmt: skip
        return gpus

    def nodes(self) -> list[Node]:
        with self._lock:
            snapshot, unreachable = self._snapshot, self._unreachable
        reason = f"the Kubernetes API does not answer: {unreachable}"[:200] if unreachable else ""
        return [
            Node(name, tuple(Gpu(**{**g.__dict__, "healthy": False, "health_reason": reason}) if reason else g for g in gpus))
            for name, _, gpus in snapshot.nodes
        ]

    def watch(self, changed) -> None:
        def poll():
            while not self._stop.wait(self.settings.poll_seconds):
                self._read()
                changed()  # the agent bumps the generation only when the inventory differs
                if self.settings.manage_resource_quotas:
                    self._sync_quotas()

        threading.Thread(target=poll, name="kubernetes-poll", daemon=True).start()

    def close(self) -> None:
        self._stop.set()

    def status(self) -> dict:
        with self._lock:
            snapshot, unreachable = self._snapshot, self._unreachable
        answer = {
            "kubernetes": {
                "api": self.host, "reachable": not unreachable, "detail": unreachable, "read_at": snapshot.read_at or None,
                "nodes": len(snapshot.nodes), "not_ready": sorted(name for name, problem, _ in snapshot.nodes if problem),
                "resource_quotas": (self._quota_problem or "in line with the claims") if self.settings.manage_resource_quotas
                else "not managed",
                "exporter": self._exporter_problem or ("read" if self.settings.exporter_urls else "none configured"),
            }
        }  # fmt: skip
        if unreachable:
            answer.update(status="degraded", detail=f"the Kubernetes API at {self.host} does not answer: {unreachable}")
        return answer

    # --- claims -------------------------------------------------------------

    def launch_env(self, gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
        return {}  # the pod's resources and annotations hold the slice (launch_spec); the agent adds OCENTER_CLAIM_ID

    def launch_spec(self, gpu: Gpu, claim) -> dict:
        """What the workload's pod carries to run in this claim: HAMi places it on the claimed device and holds it to the share."""
        device = self._device(gpu.uuid)
        kind = device.kind if device else WHOLE
        annotations, whole = {}, claim.compute_units >= COMPUTE_UNITS_PER_GPU
        if kind == WHOLE:
            limits = {"nvidia.com/gpu": "1"}
        elif kind == NVIDIA:
            limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(claim.memory_mib), "nvidia.com/gpucores": str(claim.compute_units)}
            annotations["nvidia.com/use-gpuuuid"] = gpu.uuid
        else:  # HAMi's Ascend devices: the memory asked picks the template (the claim's shape is one, or the whole NPU)
            limits = {f"huawei.com/{kind}": "1", **({} if whole else {f"huawei.com/{kind}-memory": str(claim.memory_mib)})}
            annotations[f"hami.io/use-{kind}-uuid"] = gpu.uuid
        return {
            "namespace": self.namespace_of(claim),
            "labels": {CLAIM_LABEL: claim.id},
            "annotations": annotations,
            "nodeSelector": {"kubernetes.io/hostname": gpu.node},
            "resources": {"limits": limits},
        }

    def namespace_of(self, claim) -> str:
        return self.settings.namespace.format(tenant=claim.labels.get("tenant") or "default")

    def check_claim(self, gpu: Gpu, compute_units: int, memory_mib: int, held: list) -> None:
        super().check_claim(gpu, compute_units, memory_mib, held)
        with self._lock:
            unreachable, snapshot = self._unreachable, self._snapshot
        if unreachable:
            raise Refused(f"the Kubernetes API does not answer ({unreachable}): no new claims until it does", code="cluster_unreachable")
        device = snapshot.devices.get(gpu.uuid)
        if device is None:
            return
        if device.kind == WHOLE:
            if gpu.uuid in self._whole_outside(snapshot, gpu.node, self._claims):
                raise Refused(f"GPU {gpu.uuid} is taken by a pod no claim names", code="does_not_fit", outside_gpus=1)
            return
        outside = self._outside(snapshot, gpu.uuid, {c.id for c in held})
        shares = len(held) + len(outside)
        if shares >= device.shares:
            raise Refused(f"GPU {gpu.uuid}'s {device.shares} shares are all taken ({len(held)} by claims, {len(outside)} by pods "
                          "no claim names)", code="does_not_fit", shares=device.shares, outside_pods=len(outside))  # fmt: skip
        free = gpu.memory_mib - sum(c.memory_mib for c in held) - sum(h.memory_mib for h in outside)
        # HAMi counts an NVIDIA GPU's cores in percent, an Ascend NPU's in AI cores: both become units of 100 here.
        free_cores = COMPUTE_UNITS_PER_GPU - sum(c.compute_units for c in held) - sum(device.units(h.cores) for h in outside)
        if memory_mib > free or compute_units > free_cores:
            raise Refused(
                f"GPU {gpu.uuid} has {free} MiB and {free_cores} units free by HAMi's count (pods no claim names hold "
                f"{sum(h.memory_mib for h in outside)} MiB); the slice needs {compute_units} units and {memory_mib} MiB",
                free_memory_mib=free, free_compute_units=free_cores, outside_memory_mib=sum(h.memory_mib for h in outside),
            )  # fmt: skip

    def _device(self, uuid: str) -> Device | None:
        with self._lock:
            return self._snapshot.devices.get(uuid)

    @staticmethod
    def _outside(snapshot: Snapshot, uuid: str, claim_ids: set) -> list[Holder]:
        """The shares of a device held by pods that name none of these claims."""
        return [h for h in snapshot.holders.get(uuid, []) if h.claim not in claim_ids]

    @staticmethod
    def _whole_outside(snapshot: Snapshot, node: str, claims: list) -> set[str]:
        """The whole GPUs of a node that pods naming no claim there hold: Kubernetes does not say which, so the first free ones."""
        claimed = {c.gpu_uuid for c in claims if c.gpu_uuid.startswith(f"{node}/")}
        ids = {c.id for c in claims}
        others = sum(1 for _, claim in snapshot.whole_taken.get(node, []) if claim not in ids)
        free = [uuid for uuid, d in snapshot.devices.items() if d.kind == WHOLE and uuid.startswith(f"{node}/") and uuid not in claimed]
        return set(sorted(free, key=lambda u: int(u.rsplit("/", 1)[1]))[:others])

    # --- ResourceQuotas ------------------------------------------------------

    def claims_changed(self, claims: list) -> None:
        self._claims = list(claims)
        if self.settings.manage_resource_quotas:
            self._sync_quotas()

    def _hard(self, claims: list) -> dict[str, dict]:
        """Per tenant namespace, the ResourceQuota's hard limits: what its claims hold (zero where they hold none)."""
        with self._lock:
            devices = dict(self._snapshot.devices)
        kinds = {d.kind for d in devices.values()}
        zero = {}
        if kinds & {NVIDIA, WHOLE}:
            zero["requests.nvidia.com/gpu"] = 0
        if NVIDIA in kinds:
            zero.update({"requests.nvidia.com/gpumem": 0, "requests.nvidia.com/gpucores": 0})
        for kind in kinds - {NVIDIA, WHOLE}:
            zero.update({f"requests.huawei.com/{kind}": 0, f"requests.huawei.com/{kind}-memory": 0})
        hard: dict[str, dict] = {namespace: dict(zero) for namespace in self._quotas_written}
        for claim in claims:
            device = devices.get(claim.gpu_uuid)
            if device is None:
                continue
            limits = hard.setdefault(self.namespace_of(claim), dict(zero))
            if device.kind in (NVIDIA, WHOLE):
                limits["requests.nvidia.com/gpu"] += 1
            if device.kind == NVIDIA:
                limits["requests.nvidia.com/gpumem"] += claim.memory_mib
                limits["requests.nvidia.com/gpucores"] += claim.compute_units
            elif device.kind != WHOLE:
                limits[f"requests.huawei.com/{device.kind}"] += 1
                if claim.compute_units < COMPUTE_UNITS_PER_GPU:
                    limits[f"requests.huawei.com/{device.kind}-memory"] += claim.memory_mib
        return {namespace: {k: str(v) for k, v in sorted(limits.items())} for namespace, limits in hard.items()}

    def _managed_quotas(self) -> dict[str, dict]:
        """The quotas this pool's agent wrote before (it may have restarted): they are kept in line too, or zeroed."""
        try:
            items = self._get(self.api.list_resource_quota_for_all_namespaces, label_selector=f"{POOL_LABEL}={self.pool}")["items"]
        except Exception as exc:
            self._quota_problem = f"cannot list ResourceQuotas: {_explain(exc, self.host)}"
            return {}
        return {q["metadata"]["namespace"]: (q.get("spec") or {}).get("hard") or {} for q in items}

    def _sync_quotas(self) -> None:
        """Write each namespace's quota whose limits changed; a failure is said in /v1/health and tried again at the next poll."""
        with self._quota_lock:
            problems = []
            for namespace, hard in self._hard(self._claims).items():
                if self._quotas_written.get(namespace) == hard:
                    continue
                try:
                    self._write_quota(namespace, hard)
                    self._quotas_written[namespace] = hard
                except Exception as exc:
                    problems.append(f"{namespace}: {_explain(exc, self.host)}")
            if problems:
                log.warning("ResourceQuotas not written: %s", "; ".join(problems))
            self._quota_problem = "; ".join(problems)[:500]

    def _write_quota(self, namespace: str, hard: dict) -> None:
        name = f"ocenter-{self.pool}"
        body = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name, "namespace": namespace, "labels": {
                POOL_LABEL: self.pool, "app.kubernetes.io/managed-by": "ocenter-agent"}}, "spec": {"hard": hard}}  # fmt: skip
        timeout = self.settings.request_timeout_seconds
        try:
            self.api.replace_namespaced_resource_quota(name, namespace, body, _preload_content=False, _request_timeout=timeout)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            self.api.create_namespaced_resource_quota(namespace, body, _preload_content=False, _request_timeout=timeout)

    # --- metrics -------------------------------------------------------------

    def _exporter_figures(self) -> dict | None:
        """HAMi's monitor figures by (metric, device uuid) and (metric, device uuid, namespace/pod); None with no exporter."""
        if not self.settings.exporter_urls:
            return None
        read_at, figures = self._exported
        if figures is not None and time.monotonic() - read_at < EXPORTER_REUSE_SECONDS:
            return figures
        figures, problems = {}, []
        for url in self.settings.exporter_urls:
            try:
                with urllib.request.urlopen(url, timeout=self.settings.request_timeout_seconds) as answer:
                    text = answer.read().decode()
            except OSError as exc:
                problems.append(f"{url}: {exc}")
                continue
            for name, labels, value in parse_exposition(text):
                uuid = labels.get("device_uuid") or labels.get("deviceuuid")
                if not uuid or not name.startswith("hami_"):
                    continue
                pod = f"{labels.get('namespace') or labels.get('podnamespace')}/{labels.get('pod') or labels.get('podname')}"
                key = (name, uuid, pod) if name.startswith(("hami_vgpu_", "hami_container_")) else (name, uuid)
                if name == "hami_container_last_kernel_elapsed_seconds":
                    figures[key] = min(figures.get(key, value), value)
                else:
                    figures[key] = figures.get(key, 0.0) + value
        self._exporter_problem = "; ".join(problems)[:500]
        self._exported = (time.monotonic(), figures)
        return figures

    def gpu_metrics(self, gpu: Gpu, claims: list) -> tuple[dict, list[dict]]:
        return self.metrics_of(gpu, claims, self._exporter_figures())

    def metrics_of(self, gpu: Gpu, claims: list, exported: dict | None) -> tuple[dict, list[dict]]:
        """A GPU's figures and its claims', from the pods' annotations and (when configured) HAMi's exporter."""
        with self._lock:
            snapshot = self._snapshot
        now, ids = time.time(), {c.id for c in claims}
        device = snapshot.devices.get(gpu.uuid)
        if device is not None and device.kind == WHOLE:
            taken = gpu.uuid in self._whole_outside(snapshot, gpu.node, self._claims)
            outside = [{"pid": None, "pod": pod, "memory_mib": gpu.memory_mib, "claim_id": claim}
                       for pod, claim in snapshot.whole_taken.get(gpu.node, []) if claim not in ids and taken][:1]  # fmt: skip
        else:
            outside = [{"pid": None, "pod": h.pod, "memory_mib": h.memory_mib, "claim_id": h.claim}
                       for h in self._outside(snapshot, gpu.uuid, ids)]  # fmt: skip
        outside_mib = min(gpu.memory_mib, sum(p["memory_mib"] for p in outside))
        figures = {"uuid": gpu.uuid, "memory_total_mib": gpu.memory_mib, "outside_memory_mib": outside_mib, "outside_processes": outside,
                   "health": "healthy" if gpu.healthy else "unhealthy"}  # fmt: skip
        if exported is None or (("hami_host_gpu_utilization_ratio", gpu.uuid) not in exported):
            figures["memory_used_mib"] = min(gpu.memory_mib, sum(c.memory_mib for c in claims) + outside_mib)
            figures["utilization_percent"] = None  # no source: not zero
            reason = "no utilization source: set [kubernetes] exporter_urls to HAMi's vGPU monitor" if exported is None else (
                     f"HAMi's exporter reports nothing for {gpu.uuid}")  # fmt: skip
            return figures, [{"id": c.id, "gpu_uuid": gpu.uuid, "error": reason} for c in claims]
        figures["utilization_percent"] = round(exported[("hami_host_gpu_utilization_ratio", gpu.uuid)], 1)
        figures["memory_used_mib"] = int(exported.get(("hami_host_gpu_memory_used_bytes", gpu.uuid), 0) // MIB)
        pods = {}
        for h in snapshot.holders.get(gpu.uuid, []):
            pods.setdefault(h.claim, []).append(h.pod)
        per_claim = []
        for claim in claims:
            mine = set(pods.get(claim.id, []))
            figure = lambda metric, pod: exported.get((metric, gpu.uuid, pod))  # noqa: E731 (one claim's pods' figures)
            idle_for = [v for pod in mine if (v := figure("hami_container_last_kernel_elapsed_seconds", pod)) is not None]
            if idle_for:
                self._last_busy[claim.id] = max(self._last_busy.get(claim.id, 0), now - min(idle_for))
            per_claim.append({
                "id": claim.id, "gpu_uuid": gpu.uuid, "processes": len(pods.get(claim.id, [])),
                "compute_units_used": round(sum(figure("hami_container_device_utilization_ratio", pod) or 0.0 for pod in mine), 1),
                "memory_used_mib": int(sum(figure("hami_vgpu_memory_used_bytes", pod) or 0 for pod in mine) // MIB),
                "last_busy_at": self._last_busy.get(claim.id),
            })  # fmt: skip
        return figures, per_claim


def _whole_gpus(container: dict) -> int:
    resources = container.get("resources") or {}
    value = (resources.get("limits") or {}).get("nvidia.com/gpu") or (resources.get("requests") or {}).get("nvidia.com/gpu") or 0
    return int(value)


def _vendor(kind: str) -> str:
    return "Huawei" if kind.startswith("Ascend") else kind


def _explain(exc: Exception, host: str) -> str:
    """One line for an API call that failed: the server's refusal with what to do, or why it could not be reached."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return f"{host} refused the agent ({status} {getattr(exc, 'reason', '')}): check its service account's RBAC (docs/POOLS.md)"
    if status:
        return f"{host} answered {status} {getattr(exc, 'reason', '')}".strip()
    reason = getattr(exc, "reason", None) or exc
    return f"cannot reach {host}: {reason}"[:300]
