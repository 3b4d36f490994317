"""Published model and GPU facts, loaded from the YAML files beside this module."""

from components.facts.catalog import (
    GpuFacts,
    InstanceType,
    ModelFacts,
    gpu_catalog,
    model_catalog,
    resolve_model,
)

__all__ = ["GpuFacts", "InstanceType", "ModelFacts", "gpu_catalog", "model_catalog", "resolve_model"]
