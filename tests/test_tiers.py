"""The tier contract (components/tiers.py): every registry entry must pass these, so the
registry can be the only dispatch on the tier. A new tier that forgets a role, points a role
at a function that does not exist or has the wrong arity, claims another tier's target kind,
or crashes on another tier's stack fails here, not in a deployment.
"""

from __future__ import annotations

import functools
import inspect
import typing

import pytest

from components import paths
from components.spec.errors import Problem
from components.spec.model import StackSpec
from components.tiers import OPTIONAL_ROLES, REQUIRED_ROLES, TIERS, Tier, tier_of_target

# Positional parameters each role is called with (components/tiers.py docstring).
ARITY = {"fleet": 1, "checks": 1, "risks": 1, "resolved": 2, "deploy": 3, "validators": 1, "bench": 2}
# Every `target.kind` the spec accepts (the discriminated union StackSpec.target).
TARGET_KINDS = {typing.get_args(t.model_fields["kind"].annotation)[0]
                for t in typing.get_args(StackSpec.model_fields["target"].annotation)}


@functools.cache
def example_stacks() -> dict:
    """Every example stack, resolved (stacks/Pulumi.*.yaml)."""
    from components.spec.stack_file import load_stack

    names = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in paths.STACKS_DIR.glob("Pulumi.*.yaml"))
    return {name: load_stack(name) for name in names}


def test_roles_are_the_documented_ones():
    assert set(Tier.roles()) == set(REQUIRED_ROLES) | set(OPTIONAL_ROLES) == set(ARITY)


@pytest.mark.parametrize("name", list(TIERS))
def test_every_role_imports_with_its_signature(name):
    entry = TIERS[name]
    assert entry.name == name and entry.summary and entry.targets
    for role in Tier.roles():
        if getattr(entry, role) is None:
            assert role in OPTIONAL_ROLES, f"{name}: {role} is required"
            assert entry.call(role, None, None) == []
            continue
        fn = entry.function(role)
        assert callable(fn), f"{name}.{role}"
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert len(params) == ARITY[role], f"{name}.{role} = {getattr(entry, role)} takes {len(params)} arguments"


def test_targets_are_disjoint_and_cover_every_target_kind():
    claimed = [kind for entry in TIERS.values() for kind in entry.targets]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == TARGET_KINDS
    for entry in TIERS.values():
        for kind in entry.targets:
            assert tier_of_target(kind) is entry


def test_sections_are_stack_fields_with_an_empty_default():
    """rules._generic refuses a tier's section on other tiers by comparing with its default."""
    for entry in TIERS.values():
        if entry.section is not None:
            assert entry.section in StackSpec.model_fields, entry.section


def test_every_tier_has_an_example_stack():
    assert {s.spec.tier for s in example_stacks().values()} == set(TIERS)


@pytest.mark.parametrize("name", list(TIERS))
def test_spec_rules_accept_every_stack_without_crashing(name):
    """Each tier's spec rules, on its own example stacks: nothing (they are valid); on any other
    tier's stack: a list (the target-kind mismatch is rules.py's to report), never an exception."""
    entry = TIERS[name]
    for stack_name, stack in example_stacks().items():
        own = stack.spec.tier == name
        for role, args in (("checks", (stack.spec,)), ("risks", (stack.spec,)), ("resolved", (stack.spec, stack.models))):
            found = entry.call(role, *args) if getattr(entry, role) else []
            assert isinstance(found, list) and all(isinstance(p, Problem) for p in found), (stack_name, role)
            if own and role != "risks":
                assert found == [], (stack_name, role, found)


@pytest.mark.parametrize("name", list(TIERS))
def test_validators_are_callables_for_its_own_stacks(name):
    for stack in example_stacks().values():
        if stack.spec.tier == name:
            validators = TIERS[name].function("validators")(stack)
            assert validators and all(callable(v) for v in validators)


def test_bench_endpoint_of_every_tier_is_the_one_bench_uses():
    from components.bench.command import _ENDPOINTS

    for name, entry in TIERS.items():
        assert entry.function("bench") is _ENDPOINTS[name]


def test_tier_data_names_real_spec_values():
    """`gateways` are gateway.kind values; exactly the tiers whose data say so accept them."""
    kinds = set(typing.get_args(StackSpec.model_fields["gateway"].annotation.model_fields["kind"].annotation))
    for entry in TIERS.values():
        assert entry.gateways and set(entry.gateways) <= kinds, entry.name
    assert {g for entry in TIERS.values() for g in entry.gateways} == kinds
    assert [t.name for t in TIERS.values() if t.one_host] == ["small"]
    assert [t.name for t in TIERS.values() if t.autoscales] == ["medium"]


@pytest.mark.parametrize("name", list(TIERS))
def test_fleet_of_its_own_stacks_has_gpu_nodes(name):
    from components.planner import placement
    from components.spec.fleet import fleet_for

    for stack in example_stacks().values():
        if stack.spec.tier == name:
            fleet = TIERS[name].function("fleet")(stack.spec, stack.models)
            assert isinstance(fleet, placement.Fleet) and sum(n.capacity for n in fleet.nodes) > 0
            assert fleet == fleet_for(stack.spec, stack.models)
