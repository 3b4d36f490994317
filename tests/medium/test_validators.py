"""The medium validators fail on bad manifests: they are not rubber stamps."""

from __future__ import annotations

import shutil

import yaml

from components import pins
from components.validate import registry


def _copy(result, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(result.out_dir, out)
    return out


def _edit(path, fn):
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# The example stacks themselves (medium-prod, medium-eks, medium-405b) pass every validator in
# tests/render/test_example_stacks.py (`validate --strict`); here the variants no stack file has.
VARIANTS = ("medium-gitops", "medium-eks-405b", "medium-405b-gitops")


def test_all_validators_pass_on_the_variants(medium):
    for name in VARIANTS:
        result = medium[name]
        for outcome in registry.validate_rendered(result.stack, result.out_dir):
            assert outcome.ok, f"{name}: {outcome.name}: {outcome.detail}"


def test_checkov_fails_a_privileged_container(medium, tmp_path):
    out = _copy(medium["medium-prod"], tmp_path)
    dep = next((out / "kubernetes").glob("*deployment*llama-8b*.yaml"))

    def privileged(doc):
        doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    _edit(dep, privileged)
    outcome = registry.checkov(out)
    assert not outcome.ok and "CKV_K8S_16" in outcome.detail


def test_kubernetes_validate_fails_an_unknown_field(medium, tmp_path):
    out = _copy(medium["medium-prod"], tmp_path)
    svc = next((out / "kubernetes").glob("*service-*llama-8b*.yaml"))
    _edit(svc, lambda d: d["spec"].update({"selectr": {}}))
    assert not registry.kubernetes_builtin(out).ok


def test_kubernetes_validate_uses_the_target_version(medium, tmp_path):
    """Manifests are checked against the stack's Kubernetes version: the 1.29 schema has the
    preStop sleep field, but the feature is off by default there, so the check fails."""
    out = medium["medium-prod"].out_dir
    for version in pins.KUBERNETES_VERSIONS:
        outcome = registry.kubernetes_builtin(out, kubernetes_version=version)
        assert outcome.ok and f"({version})" in outcome.name, outcome.detail
    old = registry.kubernetes_builtin(out, kubernetes_version="1.29")
    assert not old.ok and "preStop.sleep" in old.detail
    # The version reaches the validator from the stack.
    (check,) = [c for c in registry.applicable(medium["medium-prod"].stack) if "kubernetes_builtin" in repr(c)]
    assert check.keywords["kubernetes_version"] == getattr(medium["medium-prod"].stack, "kubernetes_version", "1.30")


def test_helm_key_check_fails_a_key_the_chart_dropped(medium, tmp_path):
    out = _copy(medium["medium-prod"], tmp_path)
    f = out / "helm" / "gpu-operator.values.yaml"
    f.write_text(f.read_text() + "operator:\n  defaultRuntime: containerd\n")
    outcome = registry.helm_values_keys(out)
    assert not outcome.ok and "operator.defaultRuntime" in outcome.detail


def test_crd_schema_fails_a_bad_scaled_object_and_a_missing_schema(medium, tmp_path):
    out = _copy(medium["medium-prod"], tmp_path)
    so = next((out / "kubernetes").glob("*scaledobject*.yaml"))
    _edit(so, lambda d: d["spec"].update({"minReplicaCount": "two"}))
    assert not registry.kubernetes_crds(out).ok
    out2 = _copy(medium["medium-prod"], tmp_path / "2")
    (out2 / "kubernetes" / "999-widget.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
    outcome = registry.kubernetes_crds(out2)
    assert not outcome.ok and "no schema" in outcome.detail


def test_helm_key_check_fails_a_typo(medium, tmp_path):
    out = _copy(medium["medium-prod"], tmp_path)
    f = out / "helm" / "keda.values.yaml"
    f.write_text(f.read_text() + "prometheous:\n  enabled: true\n")
    outcome = registry.helm_values_keys(out)
    assert not outcome.ok and "prometheous.enabled" in outcome.detail


def test_metric_name_check_fails_an_unknown_metric(medium, tmp_path):
    out = _copy(medium["medium-prod"], tmp_path)
    rule = next((out / "kubernetes").glob("*prometheusrule*.yaml"))
    _edit(rule, lambda d: d["spec"]["groups"][0]["rules"][0].update({"expr": "vllm:gpu_cache_usage_perc > 0.9"}))
    outcome = registry.metric_names(out)
    assert not outcome.ok and "vllm:gpu_cache_usage_perc" in outcome.detail
