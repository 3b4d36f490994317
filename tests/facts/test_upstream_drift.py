"""Every pinned fact that upstream publishes, checked against the upstream copy kept in
../shared (charts' values.yaml, dcgm-exporter counter lists, CRD schemas). A pin bumped
without its reference files, or a key list edited by hand, fails here."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from components import paths, pins
from components.facts import chart_keys
from components.facts.kubernetes import PRESTOP_SLEEP_SINCE, kubernetes_feature_problems, minor
from components.medium import addons, autoscaling, gitops, network
from components.observability import alerts, dashboard
from components.observability.metrics import METRICS, dcgm_counters_csv
from components.observability.promql import referenced_metrics
from tests.support.stacks import example_stack

SHARED = paths.REPO_ROOT.parent / "shared"
CHARTS = SHARED / "upstream" / "charts"
DCGM = SHARED / "upstream" / "dcgm-exporter"
CRDS = paths.schemas_dir() / "crds"


def _values(chart: str) -> Path:
    return CHARTS / f"{chart}-{pins.chart(chart).version}" / "values.yaml"


# --- Helm chart values keys ------------------------------------------------------------------

@pytest.mark.parametrize("chart", addons.INSTALLED_CHARTS)
def test_every_installed_chart_has_its_upstream_values_at_the_pinned_version(chart):
    pin = pins.chart(chart)
    chart_yaml = yaml.safe_load((_values(chart).parent / "Chart.yaml").read_text())
    assert chart_yaml["name"] == chart
    # gpu-operator's Chart.yaml at the tag says v1.0.0-devel (the release job sets the version);
    # the folder name carries the tag it was taken from.
    if chart != "gpu-operator":
        assert chart_yaml["version"] == pin.version
    assert pin.version in pin.source or pin.version.lstrip("v") in pin.source


def test_chart_key_lists_equal_what_the_generator_derives_from_upstream():
    generated = chart_keys.generate(CHARTS)
    assert chart_keys.KEYS_FILE.read_text() == generated, (
        "components/facts/chart_keys.yaml differs from ../shared/upstream/charts: run "
        "venv/bin/python -m components.facts.chart_keys --from ../shared/upstream/charts")
    assert set(yaml.safe_load(generated)) >= set(addons.INSTALLED_CHARTS)


def test_generator_check_mode_passes_on_the_repo_and_fails_on_drift(tmp_path):
    assert chart_keys.main(["--from", str(CHARTS), "--check"]) == 0
    for chart in addons.INSTALLED_CHARTS:
        src = _values(chart)
        dst = tmp_path / src.parent.name / "values.yaml"
        dst.parent.mkdir()
        text = src.read_text()
        if chart == "gpu-operator":  # what an older chart version had
            text = text.replace("\noperator:\n", "\noperator:\n  defaultRuntime: containerd\n", 1)
        dst.write_text(text)
    assert chart_keys.main(["--from", str(tmp_path), "--check"]) == 1


def test_removed_and_misspelt_keys_are_not_in_the_lists():
    keys = chart_keys.load()["gpu-operator"]
    assert "operator.defaultRuntime" not in keys["keys"]
    assert addons.unknown_keys("gpu-operator", "v25.3.2", {"operator": {"defaultRuntime": "containerd"}})


def test_free_form_maps_are_open_subtrees():
    keys = chart_keys.load()
    assert {"daemonsets.labels", "dcgmExporter.resources", "dcgmExporter.serviceMonitor.additionalLabels"} <= set(
        keys["gpu-operator"]["open"])
    assert "resources" in keys["keda"]["open"]
    assert "prometheus.prometheusSpec.storageSpec" in keys["kube-prometheus-stack"]["open"]


@pytest.mark.parametrize("chart,key", [(c, k) for c, ks in chart_keys.COMMENTED.items() for k in ks])
def test_commented_keys_are_documented_in_the_upstream_values(chart, key):
    """A key listed as documented-in-comments appears as a commented example in its block."""
    text = _values(chart).read_text()
    values = yaml.safe_load(text)
    parts = key.split(".")
    # the longest prefix that is a real key, then the rest must be commented lines in its block
    node, depth = values, 0
    while depth < len(parts) and isinstance(node, dict) and parts[depth] in node:
        node = node[parts[depth]]
        depth += 1
    assert 0 < depth < len(parts), f"{key}: not a commented-only key"
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{parts[0]}:")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^[A-Za-z]", lines[i])), len(lines))
    block = "\n".join(lines[start:end])
    for part in parts[depth:]:
        assert re.search(rf"^\s*#\s*{re.escape(part)}:", block, re.M), f"{key}: '# {part}:' not in the {parts[0]} block"


def test_gpu_operator_cluster_policy_reads_the_dcgm_config_name():
    schema = json.loads((CRDS / "nvidia.com" / "clusterpolicy_v1.json").read_text())
    assert _schema_at(schema, "spec.dcgmExporter.config.name")["type"] == "string"


# --- dcgm-exporter counters ------------------------------------------------------------------

def _upstream_fields() -> dict[str, str]:
    """DCGM field -> Prometheus type, from both upstream lists, commented lines included."""
    fields = {}
    for name in ("default-counters.csv", "dcp-metrics-included.csv"):
        for line in (DCGM / name).read_text().splitlines():
            m = re.match(r"^\s*#?\s*(DCGM_FI_[A-Z0-9_]+)\s*,\s*([a-z]+)\s*,", line)
            if m:
                fields[m.group(1)] = m.group(2)
    return fields


def _counter_lines(csv: str) -> dict[str, str]:
    out = {}
    for line in csv.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            field, kind, _ = (c.strip() for c in line.split(",", 2))
            out[field] = kind
    return out


def _shipped_counters() -> dict[str, str]:
    gpu = next(a for a in addons.addons(example_stack("medium-prod")) if a.chart == "gpu-operator")
    return _counter_lines(gpu.values["dcgmExporter"]["config"]["data"])


def test_every_counter_shipped_is_a_dcgm_exporter_field_with_its_type():
    upstream = _upstream_fields()
    shipped = _shipped_counters()
    assert shipped == _counter_lines(dcgm_counters_csv())
    for field, kind in shipped.items():
        assert field in upstream, f"{field} is in neither upstream counters list"
        assert kind == upstream[field], f"{field}: {kind}, upstream says {upstream[field]}"


def _exprs(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "expr" and isinstance(v, str)] + \
            [e for k, v in node.items() if k != "expr" for e in _exprs(v)]
    if isinstance(node, list):
        return [e for item in node for e in _exprs(item)]
    return []


def test_every_dcgm_metric_an_alert_or_the_dashboard_uses_is_shipped():
    slo = example_stack("medium-prod").spec.slo
    exprs = _exprs(alerts.rule_groups(slo, "vllm-.*")) + _exprs(json.loads(dashboard.dashboard_json()))
    used = {m for e in exprs for m in referenced_metrics(e) if m.startswith("DCGM_")}
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in used
    assert used <= set(_shipped_counters())
    assert {n for n, m in METRICS.items() if m.source == "dcgm"} == set(_shipped_counters())


def test_the_ecc_counter_is_off_in_the_operator_default_so_shipping_ours_matters():
    default = (DCGM / "dcp-metrics-included.csv").read_text()
    assert re.search(r"^#\s*DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", default, re.M)


def test_dcgm_exporter_image_is_the_one_the_pinned_operator_deploys():
    values = yaml.safe_load(_values("gpu-operator").read_text())["dcgmExporter"]
    assert pins.image("dcgm-exporter") == f"{values['repository']}/{values['image']}:{values['version']}"


# --- CRD fields the medium tier renders ------------------------------------------------------

def _schema_at(schema: dict, dotted: str) -> dict:
    node = schema
    for part in dotted.split("."):
        if part == "[]":
            node = node["items"]
        else:
            assert part in node.get("properties", {}), f"{dotted}: no {part!r}"
            node = node["properties"][part]
    return node


@pytest.mark.parametrize("schema_file,path", [
    ("keda.sh/scaledobject_v1alpha1.json", "spec.cooldownPeriod"),
    ("keda.sh/scaledobject_v1alpha1.json", "spec.minReplicaCount"),
    ("keda.sh/scaledobject_v1alpha1.json",
     "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds"),
    ("keda.sh/scaledobject_v1alpha1.json", "spec.fallback.replicas"),
    ("gateway.networking.k8s.io/httproute_v1.json", "spec.rules.[].timeouts.request"),
    ("argoproj.io/application_v1alpha1.json", "spec.syncPolicy.syncOptions"),
    ("argoproj.io/application_v1alpha1.json", "spec.ignoreDifferences.[].jsonPointers"),
])
def test_crd_fields_the_tier_relies_on_exist(schema_file, path):
    _schema_at(json.loads((CRDS / schema_file).read_text()), path)


def _with_platform(stack, **sections):
    """`stack` with platform sections replaced (camelCase dicts, validated by the spec model)."""
    plat = stack.spec.platform
    update = {name: type(getattr(plat, name)).model_validate(value) if getattr(plat, name) is not None
              else type(plat).model_fields[name].annotation.__args__[0].model_validate(value)
              for name, value in sections.items()}
    return replace(stack, spec=stack.spec.model_copy(update={"platform": plat.model_copy(update=update)}))


def test_rendered_custom_resources_match_their_schemas():
    stack = example_stack("medium-prod")
    gitops_stack = _with_platform(stack, gitops={"repoUrl": "https://git.example.com/platform/inference.git",
                                                 "path": "clusters/prod"})
    https = _with_platform(stack, routing={"kind": "httproute", "gatewayName": "gw"})
    assert gitops_stack.platform.gitops is not None and https.platform.routing.kind == "httproute"
    docs = autoscaling.scaled_objects(stack, "llm") + [network.http_route(https, "llm"),
                                                       gitops.application(gitops_stack, "prod", "llm")]
    for doc in docs:
        group, _, version = doc["apiVersion"].rpartition("/")
        schema = json.loads((CRDS / group / f"{doc['kind'].lower()}_{version}.json").read_text())
        jsonschema.Draft7Validator(schema).validate(doc)


def test_gateway_api_pin_is_the_release_that_made_route_timeouts_standard():
    assert tuple(int(x) for x in pins.GATEWAY_API_MIN_VERSION.lstrip("v").split(".")) >= (1, 2, 0)
    assert pins.GATEWAY_API_CHANNEL == "standard"


def test_lws_pin_matches_the_crd_schema_kept_in_shared():
    lws = pins.data()["charts"]["lws"]
    assert (CRDS / "leaderworkerset.x-k8s.io" / "leaderworkerset_v1.json").exists()
    assert f"kubernetes-sigs/lws {lws['app_version']}" in (SHARED / "README.md").read_text()
    assert lws["version"] == lws["app_version"].lstrip("v")


# --- Kubernetes versions ---------------------------------------------------------------------

def test_kubernetes_validate_ships_schemas_for_every_supported_version():
    import kubernetes_validate

    shipped = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    for version in pins.KUBERNETES_VERSIONS:
        assert (shipped / f"v{version}.0-local-strict").is_dir(), version
    assert pins.DEFAULT_KUBERNETES_VERSION in pins.KUBERNETES_VERSIONS


def test_every_supported_version_runs_the_prestop_sleep_and_older_ones_are_refused():
    assert all(minor(v) >= minor(PRESTOP_SLEEP_SINCE) for v in pins.KUBERNETES_VERSIONS)
    for version in pins.KUBERNETES_VERSIONS:
        assert kubernetes_feature_problems(version, uses_prestop_sleep=True) == []
    problems = kubernetes_feature_problems("1.29", uses_prestop_sleep=True)
    assert len(problems) == 1 and "preStop.sleep" in problems[0] and "1.29" in problems[0]
