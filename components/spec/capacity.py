"""Capacity warnings: what would deploy but miss the stack's own load, SLO, availability or tier.

The findings are components.planner.verdict's (the one verdict `plan --stack` and `migrate
check` print too), each naming the key to change. `render` and `validate` print them;
`validate --strict` fails on them.
"""

from __future__ import annotations

from components.planner import verdict
from components.planner.plan import Plan
from components.spec.errors import Problem
from components.spec.model import StackSpec
from components.spec.resolved import ResolvedModel


def configured_and_optimum(spec: StackSpec, m: ResolvedModel) -> tuple[Plan, Plan]:
    """The planner's figures for the model as configured, and its optimum for the same load."""
    return verdict.configured_and_optimum(spec, m)


def warnings_for(spec: StackSpec, models: list[ResolvedModel], total_gpus: int) -> list[Problem]:
    found = verdict.stack_verdict(spec, models)
    out = [Problem(f.key, f.message) for f in found.all_findings()]
    peak = sum(m.max_replicas * m.gpus_per_replica for m in models)
    if any(m.spec.autoscaling for m in models) and peak > total_gpus:
        detail = " + ".join(f"{m.name} {m.max_replicas}x{m.gpus_per_replica}" for m in models)
        first = next(i for i, m in enumerate(models) if m.spec.autoscaling)
        out.append(Problem(f"models[{first}].autoscaling.maxReplicas",
                           f"at their maxima the models need {peak} GPUs ({detail}) but the cluster has {total_gpus}; "
                           "replicas beyond that stay Pending: lower maxReplicas or add GPU nodes"))
    return out
