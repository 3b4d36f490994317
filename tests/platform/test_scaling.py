"""Scale to zero is refused (no demand signal exists at zero); every ScaledObject the example
stacks render passes KEDA's CRD schema."""

from __future__ import annotations

import pytest

from components import paths
from components.medium import autoscaling
from components.migration.rollouts import schema_errors
from components.spec import SpecError
from components.spec.loader import load_spec
from components.spec.stack_file import read_stack
from components.spec.pulumi_config import parse_value
from tests.support.stacks import example_stack

MEDIUM_STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in paths.STACKS_DIR.glob("Pulumi.medium-*.yaml"))


def _values(name: str) -> dict:
    config = read_stack(name)
    return {k.split(":", 1)[1]: parse_value(v) for k, v in config.values.items() if k.startswith("tierscale:")}


def test_min_replicas_zero_is_refused_naming_the_key_and_the_reason():
    values = _values("medium-eks")
    assert values["models"][0]["autoscaling"]["minReplicas"] >= 1
    values["models"][0]["autoscaling"]["minReplicas"] = 0
    with pytest.raises(SpecError) as caught:
        load_spec(values, set(), source="case", require_secrets=False)
    text = caught.value.render()
    assert "models[0].autoscaling.minReplicas" in text
    assert "never scale back up" in text and "vllm:num_requests_waiting" in text


@pytest.mark.parametrize("name", MEDIUM_STACKS)
def test_scaled_objects_pass_the_keda_crd_schema(name):
    stack = example_stack(name)
    docs = autoscaling.scaled_objects(stack, stack.spec.target.namespace)
    assert docs, name
    for doc in docs:
        assert doc["spec"]["minReplicaCount"] >= 1
        assert schema_errors(doc) == [], doc["metadata"]["name"]


def test_schema_check_can_fail():
    doc = autoscaling.scaled_objects(example_stack("medium-eks"), "tierscale")[0]
    broken = {**doc, "spec": {**doc["spec"], "minReplicaCount": "two"}}
    assert schema_errors(broken)
