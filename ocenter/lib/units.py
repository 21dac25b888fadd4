"""The unit the whole center counts compute in (the agent's protocol v1 counts the same, and keeps its own copy)."""

# A slice's compute is counted in units: this many are one whole GPU's compute.
COMPUTE_UNITS_PER_GPU = 100
