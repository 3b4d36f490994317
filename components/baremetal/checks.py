"""Bare-metal rules (host roles and names) and the validators for the rendered inventory.

Per-host GPU accounting (a replica on a host without room, the wrong GPU type, duplicate
names) is the placement step's (components.planner.placement), run by the spec's resolver.
"""

from __future__ import annotations

from components.spec.errors import Problem
from components.spec.model import BaremetalTarget, StackSpec


def problems(spec: StackSpec) -> list[Problem]:
    out: list[Problem] = []
    target = spec.target
    if not isinstance(target, BaremetalTarget):
        return out
    for i, host in enumerate(target.hosts):
        if host.models and "inference" not in host.roles:
            out.append(Problem(f"target.hosts[{i}].roles", f"{host.name} lists models but is not in the inference group "
                               "(the vLLM role runs only there): add 'inference' or remove its models"))
        if host.nvswitch and host.gpus == 0:
            out.append(Problem(f"target.hosts[{i}].nvswitch", f"{host.name} has no GPUs; an NVSwitch board has 8"))
    return out


def validators(stack) -> list:
    from components.validate import registry as v

    return [v.ansible_inventory, v.ansible_syntax]
