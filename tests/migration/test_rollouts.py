"""Argo Rollouts for a model upgrade on the medium tier (components/migration/rollouts.py): the
AnalysisTemplate's metrics are the plan's gates (canary vs stable selectors, thresholds from the
destination's SLOs), the Rollout takes the Deployment by workloadRef with the plan's steps, all
manifests pass the CRD schemas in ../shared/schemas/crds, and `migrate plan --rollout-out`.

The Rollout embeds no pod template (workloadRef), so checkov has nothing to check on it; the pod
template stays the Deployment's, which `tierscale validate` already runs checkov on."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import paths
from components.medium import manifests as med
from components.medium.names import DEFAULT_PROMETHEUS_URL
from components.migration import rollouts
from components.migration.plan import plan_migration
from components.observability.metrics import KNOWN_SERIES
from components.observability.promql import referenced_metrics
from components.spec.stack_file import load_stack
from tests.conftest import run_cli


def _write_stacks(tmp_path: Path, **dst_changes) -> Path:
    """medium-prod (source) and medium-next: llama-8b quantized to FP8 (or `model` overrides),
    plus any top-level config overrides for the destination."""
    base = yaml.safe_load((paths.STACKS_DIR / "Pulumi.medium-prod.yaml").read_text())
    (tmp_path / "Pulumi.medium-prod.yaml").write_text(yaml.safe_dump(base))
    dst = copy.deepcopy(base)
    model = dst_changes.pop("model", {"quantization": "fp8"})
    dst["config"]["tierscale:models"][1].update(model)
    for key, value in dst_changes.items():
        dst["config"][f"tierscale:{key}"] = value
    (tmp_path / "Pulumi.medium-next.yaml").write_text(yaml.safe_dump(dst))
    return tmp_path


def _render(stacks: Path, **kw):
    src, dst = load_stack("medium-prod", stacks), load_stack("medium-next", stacks)
    return src, dst, rollouts.render("medium-prod", src, "medium-next", dst, **kw)


def test_analysis_template_metrics_are_exactly_the_plan_gates(tmp_path):
    stacks = _write_stacks(tmp_path)
    src, dst, bundles = _render(stacks)
    assert [b.model for b in bundles] == ["llama-8b"]  # llama-70b is unchanged
    metrics = bundles[0].analysis_template["spec"]["metrics"]
    canary, stable = rollouts.selectors("inference", "llama-8b")
    gates = plan_migration("medium-prod", src, "medium-next", dst, dst_selector=canary, src_selector=stable).gates
    assert [m["name"] for m in metrics] == [g.name for g in gates]
    for m, g in zip(metrics, gates):
        assert m["provider"]["prometheus"] == {"address": DEFAULT_PROMETHEUS_URL, "query": g.promql}
        assert m["successCondition"] == f"result[0] <= {g.threshold!r}"
        assert float(m["successCondition"].split("<=")[1]) == g.threshold and g.op == "<="
        assert m["failureLimit"] == 0 and m["interval"] == "15s"
        # Every query parses and uses only the project's metric names.
        assert referenced_metrics(g.promql) <= KNOWN_SERIES
    # The same gates `migrate plan` prints, only the selectors rewritten to Argo's canary/stable pods.
    plain = plan_migration("medium-prod", src, "medium-next", dst).gates
    rewrite = lambda q: q.replace('deployment="dst"', canary[1:-1]).replace('deployment="src"', stable[1:-1])  # noqa: E731
    assert [rewrite(g.promql) for g in plain] == [g.promql for g in gates]
    assert 'track="canary"' in metrics[0]["provider"]["prometheus"]["query"]


def test_thresholds_come_from_the_destination_slos_and_prometheus_url(tmp_path):
    stacks = _write_stacks(tmp_path, slo={"ttftP99Ms": 800, "tpotP99Ms": 60, "availability": 99.9},
                           platform={"prometheusUrl": "http://prom.internal:9090"})
    _, _, bundles = _render(stacks)
    metrics = {m["name"]: m for m in bundles[0].analysis_template["spec"]["metrics"]}
    assert metrics["ttft_p99_seconds"]["successCondition"] == "result[0] <= 0.8"  # medium-prod says 500 ms
    assert metrics["tpot_p99_seconds"]["successCondition"] == "result[0] <= 0.06"
    assert {m["provider"]["prometheus"]["address"] for m in metrics.values()} == {"http://prom.internal:9090"}


def test_rollout_references_the_deployment_with_the_plan_steps(tmp_path):
    stacks = _write_stacks(tmp_path)
    src, dst, bundles = _render(stacks)
    b = bundles[0]
    model = next(m for m in dst.models if m.name == "llama-8b")
    deployment = med.deployment(model, dst, "inference")
    spec = b.rollout["spec"]
    assert spec["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": deployment["metadata"]["name"], "scaleDown": "progressively"}
    assert spec["selector"] == deployment["spec"]["selector"] and spec["replicas"] == deployment["spec"]["replicas"]
    assert "template" not in spec  # the pod template stays the Deployment's
    canary = spec["strategy"]["canary"]
    plan = plan_migration("medium-prod", src, "medium-next", dst)
    expected = []
    for s in plan.traffic_steps[:-1]:
        expected += [{"setWeight": s["percent"]}, {"pause": {"duration": s["hold"]}}]
    assert canary["steps"] == expected and plan.traffic_steps[-1]["percent"] == 100
    assert canary["analysis"] == {"templates": [{"templateName": b.analysis_template["metadata"]["name"]}],
                                  "startingStep": 1}
    assert canary["canaryMetadata"]["labels"] == {rollouts.TRACK_LABEL: "canary"}
    assert canary["stableMetadata"]["labels"] == {rollouts.TRACK_LABEL: "stable"}
    assert "trafficRouting" not in canary and canary["maxUnavailable"] == 0
    relabel = b.service_monitor["spec"]["endpoints"][0]["relabelings"][-1]
    assert relabel == {"sourceLabels": ["__meta_kubernetes_pod_label_tierscale_dev_track"], "targetLabel": "track",
                       "action": "replace"}


def test_manifests_pass_the_crd_schemas_and_a_planted_field_fails(tmp_path):
    _, _, bundles = _render(_write_stacks(tmp_path))
    docs = bundles[0].documents()
    assert len(docs) == 4  # the autoscaled model also gets its ScaledObject, aimed at the Rollout
    for doc in docs.values():
        assert rollouts.schema_errors(doc) == [], doc["kind"]
    scaler = bundles[0].scaled_object
    assert scaler["spec"]["scaleTargetRef"] == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                                "name": bundles[0].rollout["metadata"]["name"]}
    bad = copy.deepcopy(bundles[0].rollout)
    bad["spec"]["strategy"]["canary"]["steps"][0]["setWieght"] = 5
    assert any("setWieght" in e for e in rollouts.schema_errors(bad))
    bad = copy.deepcopy(bundles[0].analysis_template)
    bad["spec"]["metrics"][0]["failureLimt"] = 0
    assert any("failureLimt" in e for e in rollouts.schema_errors(bad))
    bad = copy.deepcopy(bundles[0].rollout)
    bad["spec"]["workloadRef"]["scaleDown"] = 3
    assert rollouts.schema_errors(bad)


def test_written_files_have_the_kubernetes_shape(tmp_path):
    _, _, bundles = _render(_write_stacks(tmp_path))
    files = rollouts.write(bundles, tmp_path / "out")
    tool = Path(sys.executable).parent / "kubernetes-validate"
    # kubernetes-validate has no schema for custom kinds: it parses them and warns (exit 0).
    proc = subprocess.run([str(tool), "--strict", *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for f in files:
        doc = yaml.safe_load(f.read_text())
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"] and doc["metadata"]["namespace"] == "inference"


def test_canary_split_follows_argo_arithmetic():
    # docs/features/canary: 10 replicas, 10% -> 1 canary / 9 stable; 41% -> 4 / 6 (no surge).
    assert rollouts.canary_split(10, 10, 0) == (1, 9)
    assert rollouts.canary_split(10, 41, 0) == (4, 6)
    assert rollouts.canary_split(3, 50, 0) == (2, 1)  # tie: more canary
    assert rollouts.canary_split(5, 5, 0) == (1, 4)  # never 0 canary pods for 1-99% with 2+ replicas
    assert rollouts.canary_split(5, 5, 1) == (1, 5)  # a surge pod gets closer to 5%


def test_refuses_what_is_not_a_medium_model_upgrade(tmp_path):
    stacks = _write_stacks(tmp_path, model={"autoscaling": {"minReplicas": 4, "maxReplicas": 8}})
    with pytest.raises(rollouts.RolloutError, match="no model changes its weights"):
        _render(stacks)
    stacks = _write_stacks(tmp_path, target={"kind": "kubernetes", "context": "prod-gpu", "namespace": "other",
                                             "gpuNodes": 6})
    with pytest.raises(rollouts.RolloutError, match="namespaces differ"):
        _render(stacks)


def test_cli_rollout_out_writes_on_an_upgrade_and_exits_2_otherwise(tmp_path):
    stacks = _write_stacks(tmp_path)
    out = tmp_path / "rollout"
    proc = run_cli("migrate", "plan", "--from", "medium-prod", "--to", "medium-next", "--stacks-dir", str(stacks),
                   "--json", "--rollout-out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changes"]  # stdout is still the plan
    assert sorted(p.name for p in out.iterdir()) == ["analysistemplate-llama-8b.yaml", "rollout-llama-8b.yaml",
                                                      "scaledobject-llama-8b.yaml", "servicemonitor-llama-8b.yaml"]
    assert f"wrote {out / 'rollout-llama-8b.yaml'}" in proc.stderr
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in out.iterdir()}
    assert kinds == {"AnalysisTemplate", "Rollout", "ScaledObject", "ServiceMonitor"}

    other = tmp_path / "none"
    proc = run_cli("migrate", "plan", "--from", "small-dev", "--to", "medium-prod", "--rollout-out", str(other),
                   "--accept", "removed-model")
    assert proc.returncode == 2 and "--rollout-out" in proc.stderr and "small -> medium" in proc.stderr
    assert not other.exists() and "Traceback" not in proc.stderr
