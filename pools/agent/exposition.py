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
