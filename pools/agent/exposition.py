"""
The agent's figures in Prometheus' text format (version 0.0.4), from the
standard library: what ``GET /metrics`` answers, per GPU and per claim, so
Prometheus can scrape an agent as it scrapes a node exporter.
"""

# (metric, help, the figure in a GPU's answer of /v1/metrics)
GPU_FIGURES = [
    ("ocenter_agent_gpu_utilization_percent", "Utilization of the GPU's compute, percent.", "utilization_percent"),
    ("ocenter_agent_gpu_memory_used_mib", "GPU memory in use, MiB.", "memory_used_mib"),
    ("ocenter_agent_gpu_memory_total_mib", "GPU memory in all, MiB.", "memory_total_mib"),
    ("ocenter_agent_gpu_power_watts", "Power drawn by the GPU, watts.", "power_watts"),
    ("ocenter_agent_gpu_temperature_celsius", "The GPU's temperature, degrees Celsius.", "temperature_c"),
    ("ocenter_agent_gpu_ecc_uncorrected_errors", "Uncorrected ECC errors the GPU reports.", "ecc_uncorrected"),
]
CLAIM_FIGURES = [
    ("ocenter_agent_claim_compute_units_used", "Compute units a claim's processes use now (100 make a GPU).", "compute_units_used"),
    ("ocenter_agent_claim_memory_used_mib", "GPU memory a claim's processes use, MiB.", "memory_used_mib"),
    ("ocenter_agent_claim_processes", "Processes running on a claim's slice.", "processes"),
]


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    return "{" + ",".join(f'{name}="{_label(value)}"' for name, value in labels.items()) + "}"


def _number(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def render(figures: dict, gpus: dict) -> str:
    """``figures``: the agent's /v1/metrics answer; ``gpus``: its GPUs by UUID (for their index and model)."""
    pool = figures["pool"]
    lines = []
    for metric, help_text, key in GPU_FIGURES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for gpu in figures["accelerators"]:
            if isinstance(gpu.get(key), int | float) and not isinstance(gpu.get(key), bool):
                known = gpus.get(gpu["uuid"])
                labels = _labels(pool=pool, uuid=gpu["uuid"], index=getattr(known, "index", ""), model=getattr(known, "model", ""))
                lines.append(f"{metric}{labels} {_number(gpu[key])}")
    for metric, help_text, key in CLAIM_FIGURES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for claim in figures["allocations"]:
            if isinstance(claim.get(key), int | float) and not isinstance(claim.get(key), bool):
                lines.append(f"{metric}{_labels(pool=pool, claim=claim['id'], uuid=claim['gpu_uuid'])} {_number(claim[key])}")
    lines += ["# HELP ocenter_agent_claims Claims the agent holds.", "# TYPE ocenter_agent_claims gauge",
              f"ocenter_agent_claims{_labels(pool=pool)} {len(figures['allocations'])}"]  # fmt: skip
    return "\n".join(lines) + "\n"


_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text: str) -> list[tuple[str, dict, float]]:
    """Samples of Prometheus' text format as ``(name, labels, value)``: what the agent reads from an exporter (HAMi's).

    Comments, timestamps and lines it cannot read are skipped: an exporter's odd line must not hide the others.
    """
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, labels, rest = line, {}, ""
        if "{" in line:
            name, _, tail = line.partition("{")
            labels, tail = _read_labels(tail)
            if labels is None:
                continue
            rest = tail
        else:
            name, _, rest = line.partition(" ")
        try:
            samples.append((name.strip(), labels, float(rest.split()[0])))
        except (IndexError, ValueError):
            continue
    return samples


def _read_labels(tail: str) -> tuple[dict | None, str]:
    """The labels at the start of ``tail`` (after ``{``) and what follows the ``}``; None when they do not close."""
    labels, i = {}, 0
    while i < len(tail):
        if tail[i] in ", ":
            i += 1
            continue
        if tail[i] == "}":
            return labels, tail[i + 1 :]
        key, sep, after = tail[i:].partition('="')
        if not sep:
            return None, ""
        value, j = [], 0
        while j < len(after) and after[j] != '"':
            pair = after[j : j + 2]
            value.append(_ESCAPES.get(pair, after[j]))
            j += 2 if pair in _ESCAPES else 1
        labels[key.strip()] = "".join(value)
        i += len(key) + 2 + j + 1
    return None, ""
