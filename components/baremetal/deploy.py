"""The bare-metal entry in the tier registry: build the component, export its outputs."""

from __future__ import annotations

import pulumi

from components.baremetal.component import BaremetalArgs, BaremetalNodes
from components.spec import ResolvedStack


def deploy(stack_name: str, stack: ResolvedStack, secret) -> pulumi.ComponentResource:
    component = BaremetalNodes(stack_name, BaremetalArgs(stack=stack, stack_name=stack_name))
    pulumi.export("hosts", component.hosts)
    return component
