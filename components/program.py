"""The Pulumi program: read config, validate the spec, build the tier component, export.

`__main__.py` (under `pulumi up`) and `tierscale render` (under the mock runtime) both call
`run`, so the offline preview exercises exactly the code that deploys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.spec import NAMESPACE, ResolvedStack, load_spec
from components.spec.pulumi_config import read_runtime_config
from components.tiers import TIERS


@dataclass
class ProgramResult:
    stack: ResolvedStack
    component: pulumi.ComponentResource


def run(stack_name: str, require_secrets: bool = True) -> ProgramResult:
    """Raises SpecError before registering any resource when the config is invalid."""
    values, secret_keys = read_runtime_config()
    stack = load_spec(values, secret_keys, source=f"stack {stack_name}", require_secrets=require_secrets)
    config = pulumi.Config(NAMESPACE)
    secret = lambda key: config.get_secret(key) if key in stack.secrets_present else None  # noqa: E731
    tier = stack.spec.tier
    component = TIERS[tier].function("deploy")(stack_name, stack, secret)
    pulumi.export("tier", tier)
    pulumi.export("models", {m.name: {
        "servedModelName": m.served_model_name, "tensorParallel": m.tensor_parallel,
        "pipelineParallel": m.pipeline_parallel, "replicas": m.replicas, "maxModelLen": m.max_model_len,
        "nodesPerReplica": m.nodes_per_replica,
    } for m in stack.models})
    return ProgramResult(stack, component)
