"""Published model and GPU facts, loaded from the YAML files beside this module."""

from components.facts.catalog import (
    Checkpoint,
    Dtype,
    GpuFacts,
    InstanceType,
    ModelFacts,
    gpu_catalog,
    gpu_types,
    model_catalog,
    resolve_model,
)

__all__ = ["Checkpoint", "Dtype", "GpuFacts", "InstanceType", "ModelFacts", "gpu_catalog", "gpu_types",
           "model_catalog", "resolve_model"]
