"""
A fake NVML: the ``pynvml`` functions oCenter's nvml backend calls, over GPUs,
processes, ECC counters and XID events that a test scripts in a JSON file
(``$OCENTER_FAKE_NVML``, read again on every call, so a test changes the
hardware under a running agent by rewriting it). It is the only thing faked:
no NVIDIA driver can run here. Put this folder first on ``PYTHONPATH``.

    {"init_error": null, "driver": "550.54.15",
     "gpus": [{"uuid": "GPU-…", "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "memory_used_mib": 0,
               "utilization": 0, "power_mw": 70000, "temperature": 35, "mig": false,
               "ecc_uncorrected": 0, "retired_pending": false, "remapped": [0, 0, 0, 0], "lost": false,
               "processes": [{"pid": 1234, "memory_mib": 6000, "sm": 40}], "xid": [79]}]}
"""

import json
import os
import time
from types import SimpleNamespace

MIB = 1024 * 1024
NVML_DEVICE_MIG_ENABLE = 1
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_TEMPERATURE_GPU = 0
nvmlEventTypeXidCriticalError = 0x8


class NVMLError(Exception):
    def __init__(self, value=999):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return {3: "Not Supported", 6: "Not Found", 9: "Driver Not Loaded", 10: "Timeout", 12: "NVML Shared Library Not Found",
                15: "GPU is lost"}.get(self.value, "Unknown Error")  # fmt: skip


def _error(name, value):
    return type(name, (NVMLError,), {"__init__": lambda self: NVMLError.__init__(self, value)})


NVMLError_NotSupported = _error("NVMLError_NotSupported", 3)
NVMLError_NotFound = _error("NVMLError_NotFound", 6)
NVMLError_DriverNotLoaded = _error("NVMLError_DriverNotLoaded", 9)
NVMLError_Timeout = _error("NVMLError_Timeout", 10)
NVMLError_LibraryNotFound = _error("NVMLError_LibraryNotFound", 12)
NVMLError_GpuIsLost = _error("NVMLError_GpuIsLost", 15)
NVMLError_Unknown = _error("NVMLError_Unknown", 999)
_INIT_ERRORS = {"DRIVER_NOT_LOADED": NVMLError_DriverNotLoaded, "LIBRARY_NOT_FOUND": NVMLError_LibraryNotFound}
_delivered: dict[str, int] = {}  # uuid → how many of its XID events were handed out


class Handle:
    def __init__(self, index):
        self.index = index


def _state() -> dict:
    with open(os.environ["OCENTER_FAKE_NVML"]) as f:
        return json.load(f)


def _gpu(handle) -> dict:
    state = _state()
    if state.get("broken"):
        raise NVMLError_Unknown()
    gpu = state["gpus"][handle.index]
    if gpu.get("lost"):
        raise NVMLError_GpuIsLost()
    return gpu


def nvmlInit():
    error = _state().get("init_error")
    if error:
        raise _INIT_ERRORS[error]()


def nvmlShutdown():
    pass


def nvmlSystemGetDriverVersion():
    return _state().get("driver", "550.54.15")


def nvmlDeviceGetCount():
    return len(_state()["gpus"])


def nvmlDeviceGetHandleByIndex(index):
    return Handle(index)


def nvmlDeviceGetUUID(handle):
    return _gpu(handle)["uuid"]


def nvmlDeviceGetName(handle):
    return _gpu(handle)["name"]


def nvmlDeviceGetMemoryInfo(handle, version=None):
    gpu = _gpu(handle)
    total, used = gpu["memory_total_mib"] * MIB, gpu.get("memory_used_mib", 0) * MIB
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetMigMode(handle):
    gpu = _gpu(handle)
    if "mig" not in gpu:
        raise NVMLError_NotSupported()
    return [1 if gpu["mig"] else 0, 1 if gpu["mig"] else 0]


def nvmlDeviceGetTotalEccErrors(handle, error_type, counter_type):
    gpu = _gpu(handle)
    if gpu.get("ecc_uncorrected") is None:
        raise NVMLError_NotSupported()
    return gpu["ecc_uncorrected"]


def nvmlDeviceGetRetiredPagesPendingStatus(handle):
    return 1 if _gpu(handle).get("retired_pending") else 0


def nvmlDeviceGetRemappedRows(handle):
    return tuple(_gpu(handle).get("remapped", [0, 0, 0, 0]))


def nvmlEventSetCreate():
    return SimpleNamespace(handles=[])


def nvmlDeviceRegisterEvents(handle, event_types, event_set):
    if _state().get("events_unsupported"):
        raise NVMLError_NotSupported()
    event_set.handles.append(handle)


def nvmlEventSetWait(event_set, timeout_ms):
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        for handle in event_set.handles:
            gpu = _state()["gpus"][handle.index]
            xids, seen = gpu.get("xid", []), _delivered.get(gpu["uuid"], 0)
            if len(xids) > seen:
                _delivered[gpu["uuid"]] = seen + 1
                return SimpleNamespace(device=handle, eventType=nvmlEventTypeXidCriticalError, eventData=xids[seen])
        if time.monotonic() >= deadline:
            raise NVMLError_Timeout()
        time.sleep(0.05)


def nvmlDeviceGetUtilizationRates(handle):
    return SimpleNamespace(gpu=_gpu(handle).get("utilization", 0), memory=0)


def nvmlDeviceGetPowerUsage(handle):
    return _gpu(handle).get("power_mw", 60000)


def nvmlDeviceGetTemperature(handle, sensor):
    return _gpu(handle).get("temperature", 35)


def nvmlDeviceGetComputeRunningProcesses(handle):
    return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p["memory_mib"] * MIB) for p in _gpu(handle).get("processes", [])]


def nvmlDeviceGetProcessUtilization(handle, timestamp):
    now = int(time.time() * 1_000_000)
    samples = [SimpleNamespace(pid=p["pid"], timeStamp=now, smUtil=p.get("sm", 0), memUtil=0, encUtil=0, decUtil=0)
               for p in _gpu(handle).get("processes", [])]  # fmt: skip
    if not samples:
        raise NVMLError_NotFound()
    return samples
