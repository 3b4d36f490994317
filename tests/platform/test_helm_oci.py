"""Every Helm release in every example stack's render is one pulumi-kubernetes can pull.

pulumi-kubernetes resolves a bare chart name against `repositoryOpts.repo` through Helm's
repository index (`<repo>/index.yaml`); an OCI registry has none, so `repo: oci://…` plus a
bare chart fails (pulumi/pulumi-kubernetes issue 2158). Only a chart that is itself an
`oci://` reference is pulled from the registry (pulumi/pulumi-kubernetes@v4.32.0
provider/pkg/provider/helm_release.go resolveChartName / locateChart).
"""

from __future__ import annotations

import pytest

from components import paths, pins
from components.medium.addons import helm_chart_reference
from components.render.stack import render_stack

EXAMPLE_STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in paths.STACKS_DIR.glob("Pulumi.*.yaml"))
RELEASE = "kubernetes:helm.sh/v3:Release"


def chart_problems(inputs: dict) -> list[str]:
    """What pulumi-kubernetes could not pull: an OCI repo with a bare chart name."""
    chart = inputs.get("chart", "")
    repo = (inputs.get("repositoryOpts") or {}).get("repo")
    problems = []
    if repo and repo.startswith("oci://"):
        problems.append(f"repositoryOpts.repo {repo!r} is an OCI registry (no index.yaml): "
                        f"give chart as '{repo.rstrip('/')}/{chart}' and no repo")
    if chart.startswith("oci://") and repo:
        problems.append(f"chart {chart!r} is an OCI reference: repositoryOpts.repo {repo!r} must be unset")
    return problems


def test_the_rule_catches_the_old_form():
    assert chart_problems({"chart": "karpenter", "repositoryOpts": {"repo": "oci://public.ecr.aws/karpenter"}})
    assert chart_problems({"chart": "oci://public.ecr.aws/karpenter/karpenter"}) == []
    assert chart_problems({"chart": "keda", "repositoryOpts": {"repo": "https://kedacore.github.io/charts"}}) == []


def test_oci_pins_become_full_chart_references():
    for name in ("karpenter", "lws"):
        pin = pins.chart(name)
        assert pin.repo.startswith("oci://"), name
        assert helm_chart_reference(name, pin.repo) == (f"{pin.repo}/{name}", None)
    assert helm_chart_reference("keda", "https://kedacore.github.io/charts") == ("keda", "https://kedacore.github.io/charts")


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_helm_release_of_every_example_stack_is_pullable(stack, tmp_path):
    result = render_stack(stack, tmp_path / stack)
    releases = [r for r in result.resources if r.type == RELEASE]
    problems = {r.name: chart_problems(r.inputs) for r in releases}
    assert {k: v for k, v in problems.items() if v} == {}
    for r in releases:
        chart = r.inputs["chart"]
        if chart.startswith("oci://"):
            assert (r.inputs.get("repositoryOpts") or {}).get("repo") is None, r.name
