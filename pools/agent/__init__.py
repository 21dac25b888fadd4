"""
The oCenter pool agent: a small REST service beside one GPU pool.

It reports the pool's hardware and carries out oCenter's claims on it
(protocol v1). It imports nothing outside the standard library (and, for the
``nvml`` backend, NVIDIA's ``nvidia-ml-py``), so that it can be installed
alone on a pool's controller host: never import Django here.
"""

PROTOCOL_VERSION = "v1"
AGENT_VERSION = "0.1.0"
# Protocol v1 counts a slice's compute in units: this many are one whole GPU (as oCenter does).
COMPUTE_UNITS_PER_GPU = 100
