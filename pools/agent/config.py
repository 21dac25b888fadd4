"""Agent configuration: a TOML file, checked before anything starts."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

POOL_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """The configuration file says something the agent cannot run with."""


@dataclass(frozen=True)
class Template:
    """A shape a device is cut to (Huawei's vNPU templates, such as ``vir05_1c_16g``): a slice on it is one of these, or whole."""

    name: str
    compute_units: int
    memory_mib: int

    def as_inventory(self) -> dict:
        return {"name": self.name, "compute_units": self.compute_units, "memory_mib": self.memory_mib}


@dataclass(frozen=True)
class NodeGroup:
    """``count`` alike nodes, each with ``gpus`` accelerators of one model."""

    name: str
    count: int
    gpus: int
    vendor: str
    model: str
    memory_mib: int
    tdp_watts: int
    templates: tuple[Template, ...] = ()


@dataclass
class Faults:
    """Knobs that make the agent misbehave on purpose, for tests and demos."""

    latency_ms: int = 0
    error_rate: float = 0.0
    unhealthy_gpus: list[str] = field(default_factory=list)
    # This share of claims is carried out, then the connection is closed without an answer.
    lost_claim_answer_rate: float = 0.0
    # MiB that processes no claim names hold, per GPU uuid (the simulated backend's outside use).
    outside_use_mib: dict[str, int] = field(default_factory=dict)


ENFORCEMENTS = ("mps", "hami-core", "exclusive")


@dataclass(frozen=True)
class NvmlConfig:
    """The ``[nvml]`` table: how this host's real GPUs are sliced and watched."""

    enforcement: str = "mps"
    node: str = ""  # the host's name in the inventory (default: its hostname)
    mps_pipe_directory: str = "/tmp/nvidia-mps"
    mps_log_directory: str = "/tmp/nvidia-mps-log"
    start_mps_daemon: bool = False  # start `nvidia-cuda-mps-control -d` when none answers
    mps_control: str = "nvidia-cuda-mps-control"
    health_seconds: float = 10.0  # how often ECC, retired pages and remapped rows are read


@dataclass(frozen=True)
class KubernetesConfig:
    """The ``[kubernetes]`` table: the cluster the agent reads, and how a claim becomes a pod."""

    kubeconfig: str = ""  # a kubeconfig file; empty: the pod's service account (in-cluster)
    context: str = ""  # the kubeconfig's context (default: its current one)
    # In a cluster (no kubeconfig): where the pod's service account token and the API server's CA are mounted.
    service_account_dir: str = "/var/run/secrets/kubernetes.io/serviceaccount"
    node_selector: str = ""  # a label selector for the nodes of this pool (default: every node)
    namespace: str = "ocenter-{tenant}"  # the namespace a tenant's workloads run in
    poll_seconds: float = 10.0  # how often nodes and pods are read
    request_timeout_seconds: float = 5.0
    manage_resource_quotas: bool = False  # keep a ResourceQuota "ocenter" in each tenant namespace equal to its claims
    exporter_urls: tuple[str, ...] = ()  # HAMi's vGPU monitor endpoints (…:9394/metrics) for utilization
    # Memory of a whole GPU on nodes without HAMi and without GPU feature discovery's nvidia.com/gpu.memory label.
    whole_gpu_memory_mib: int = 0
    # HAMi device type (Ascend910B3 …) → the templates its devices are cut to, as in HAMi's device configmap.
    templates: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    pool: str
    backend: str
    listen: str
    state: Path
    node_groups: list[NodeGroup]
    faults: Faults
    nvml: NvmlConfig = field(default_factory=NvmlConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    # A connection that sends nothing for this long is closed: an idle client must not hold a thread forever.
    read_timeout: float = 30.0
    # TLS from the standard library: both set, the agent speaks HTTPS only (pool tokens cross regions).
    tls_cert: Path | None = None
    tls_key: Path | None = None


def _require(table, key, kind, where):
    if key not in table:
        raise ConfigError(f"{where}: '{key}' is missing")
    value = table[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: '{key}' must be a whole number, not {value!r}")
    if kind is str and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    return value


def parse_faults(table: dict, where: str = "[faults]") -> Faults:
    """Check a faults table (from the file, or from ``PUT /v1/faults``)."""
    unknown = set(table) - {"latency_ms", "error_rate", "unhealthy_gpus", "refuse_connections_seconds", "lost_claim_answer_rate",
                            "outside_use_mib"}  # fmt: skip
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    latency = table.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= 60_000:
        raise ConfigError(f"{where}: 'latency_ms' must be a whole number from 0 to 60000")
    rates = {}
    for name in ("error_rate", "lost_claim_answer_rate"):
        rate = table.get(name, 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"{where}: '{name}' must be a number from 0 to 1")
        rates[name] = float(rate)
    unhealthy = table.get("unhealthy_gpus", [])
    if not isinstance(unhealthy, list) or not all(isinstance(u, str) for u in unhealthy):
        raise ConfigError(f"{where}: 'unhealthy_gpus' must be a list of GPU uuids")
    outside = table.get("outside_use_mib", {})
    if not isinstance(outside, dict) or not all(isinstance(k, str) and _whole(v) and v >= 0 for k, v in outside.items()):
        raise ConfigError(f"{where}: 'outside_use_mib' must map GPU uuids to whole numbers of MiB")
    return Faults(latency_ms=latency, unhealthy_gpus=list(unhealthy), outside_use_mib=dict(outside), **rates)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_config(path: str | Path, *, listen: str | None = None, state: str | None = None) -> AgentConfig:
    """Read and check the agent's TOML file; command-line values win."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    agent = data.get("agent", {})
    pool = _require(agent, "pool", str, "[agent]")
    if not POOL_NAME_RE.match(pool):
        raise ConfigError("[agent]: 'pool' must be lower-case letters, digits and '-' (at most 63)")
    backend = agent.get("backend", "simulated")
    listen = listen or agent.get("listen", "127.0.0.1:9100")
    state_path = Path(state or agent.get("state", f"{pool}-claims.sqlite3"))

    groups, nvml, kubernetes = [], NvmlConfig(), KubernetesConfig()
    if backend == "nvml":
        nvml = _parse_nvml(data.get("nvml", {}))
    elif backend == "kubernetes":
        kubernetes = _parse_kubernetes(data.get("kubernetes", {}))
    elif backend == "simulated":
        tables = data.get("simulated", {}).get("nodes", [])
        if not tables:
            raise ConfigError("[[simulated.nodes]]: the simulated backend needs at least one node group")
        for i, table in enumerate(tables):
            where = f"[[simulated.nodes]] #{i + 1}"
            group = NodeGroup(
                name=_require(table, "name", str, where),
                count=table.get("count", 1),
                gpus=_require(table, "gpus", int, where),
                vendor=_require(table, "vendor", str, where),
                model=_require(table, "model", str, where),
                memory_mib=_require(table, "memory_mib", int, where),
                tdp_watts=table.get("tdp_watts", 400),
                templates=parse_templates(table.get("templates", []), where=f"{where} templates", memory_mib=table.get("memory_mib")),
            )
            if not (isinstance(group.count, int) and 1 <= group.count <= 10_000):
                raise ConfigError(f"{where}: 'count' must be from 1 to 10000")
            if not 1 <= group.gpus <= 64:
                raise ConfigError(f"{where}: 'gpus' must be from 1 to 64")
            if group.memory_mib < 1:
                raise ConfigError(f"{where}: 'memory_mib' must be positive")
            groups.append(group)
    read_timeout = agent.get("read_timeout_seconds", 30)
    if isinstance(read_timeout, bool) or not isinstance(read_timeout, (int, float)) or not 0.1 <= read_timeout <= 3600:
        raise ConfigError("[agent]: 'read_timeout_seconds' must be a number of seconds from 0.1 to 3600")
    tls = {key: agent.get(key) for key in ("tls_cert", "tls_key")}
    if any(tls.values()) and not all(isinstance(v, str) and v for v in tls.values()):
        raise ConfigError("[agent]: TLS needs both 'tls_cert' and 'tls_key' (PEM files), or neither")
    for key, value in tls.items():
        if value and not Path(value).is_file():
            raise ConfigError(f"[agent]: '{key}' {value}: no such file")
    return AgentConfig(
        pool=pool,
        backend=backend,
        listen=listen,
        state=state_path,
        node_groups=groups,
        faults=parse_faults(data.get("faults", {})),
        nvml=nvml,
        kubernetes=kubernetes,
        read_timeout=float(read_timeout),
        tls_cert=Path(tls["tls_cert"]) if tls["tls_cert"] else None,
        tls_key=Path(tls["tls_key"]) if tls["tls_key"] else None,
    )


def _parse_nvml(table: dict) -> NvmlConfig:
    where = "[nvml]"
    known = {f for f in NvmlConfig.__dataclass_fields__}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if table.get("enforcement", "mps") not in ENFORCEMENTS:
        raise ConfigError(f"{where}: 'enforcement' must be one of {', '.join(ENFORCEMENTS)}")
    for key in ("node", "mps_pipe_directory", "mps_log_directory", "mps_control"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: '{key}' must be a string")
    if not isinstance(table.get("start_mps_daemon", False), bool):
        raise ConfigError(f"{where}: 'start_mps_daemon' must be true or false")
    seconds = table.get("health_seconds", 10.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0.1 <= seconds <= 3600:
        raise ConfigError(f"{where}: 'health_seconds' must be a number of seconds from 0.1 to 3600")
    return NvmlConfig(**{**table, "health_seconds": float(seconds)})


def parse_templates(tables, *, where: str, memory_mib=None) -> tuple[Template, ...]:
    """A device's templates, smallest first: each a name, compute units (of 100) and MiB, no larger than the device."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: a list of {{name, compute_units, memory_mib}} tables")
    templates = []
    for table in tables:
        unknown = set(table) - {"name", "compute_units", "memory_mib"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; a template has name, compute_units and memory_mib")
        template = Template(_require(table, "name", str, where), _require(table, "compute_units", int, where),
                            _require(table, "memory_mib", int, where))  # fmt: skip
        if not 1 <= template.compute_units <= 100:
            raise ConfigError(f"{where}: template {template.name}: 'compute_units' must be from 1 to 100 (100 = the whole device)")
        if template.memory_mib < 1 or (_whole(memory_mib) and template.memory_mib > memory_mib):
            raise ConfigError(f"{where}: template {template.name}: 'memory_mib' must be from 1 to the device's {memory_mib} MiB")
        templates.append(template)
    if len({t.name for t in templates}) != len(templates):
        raise ConfigError(f"{where}: two templates have the same name")
    return tuple(sorted(templates, key=lambda t: (t.memory_mib, t.compute_units)))


def _parse_kubernetes(table: dict) -> KubernetesConfig:
    where = "[kubernetes]"
    known = set(KubernetesConfig.__dataclass_fields__)
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    for key in ("kubeconfig", "context", "service_account_dir", "node_selector", "namespace"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: '{key}' must be a string")
    if table.get("kubeconfig") and not Path(table["kubeconfig"]).is_file():
        raise ConfigError(f"{where}: 'kubeconfig' {table['kubeconfig']}: no such file")
    if "{tenant}" not in table.get("namespace", "{tenant}"):
        raise ConfigError(f"{where}: 'namespace' must contain {{tenant}}: each tenant's workloads run in a namespace of its own")
    seconds = {}
    for key, low in (("poll_seconds", 0.1), ("request_timeout_seconds", 0.1)):
        value = table.get(key, KubernetesConfig.__dataclass_fields__[key].default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= 3600:
            raise ConfigError(f"{where}: '{key}' must be a number of seconds from {low} to 3600")
        seconds[key] = float(value)
    if not isinstance(table.get("manage_resource_quotas", False), bool):
        raise ConfigError(f"{where}: 'manage_resource_quotas' must be true or false")
    urls = table.get("exporter_urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        raise ConfigError(f"{where}: 'exporter_urls' must be a list of http(s) URLs (HAMi's vGPU monitor, …/metrics)")
    whole = table.get("whole_gpu_memory_mib", 0)
    if not _whole(whole) or whole < 0:
        raise ConfigError(f"{where}: 'whole_gpu_memory_mib' must be a whole number of MiB")
    templates = table.get("templates", {})
    if not isinstance(templates, dict):
        raise ConfigError(f"{where}: 'templates' maps a HAMi device type (Ascend910B3 …) to its list of templates")
    return KubernetesConfig(**{
        **table, **seconds, "exporter_urls": tuple(urls),
        "templates": {kind: parse_templates(t, where=f"[kubernetes.templates] {kind}") for kind, t in templates.items()},
    })  # fmt: skip
