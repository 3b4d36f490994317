"""Helm add-ons: pinned charts, values that follow the stack, no keys the chart does not read."""

from __future__ import annotations

import re
from dataclasses import replace

from components import pins
from components.facts import chart_keys
from components.medium import addons
from components.observability.metrics import dcgm_counters_csv
from tests.support.stacks import example_stack


def test_every_installed_chart_is_pinned_and_has_a_key_list_for_that_version():
    keys = chart_keys.load()
    releases = {a.chart: a for a in addons.addons(example_stack("medium-prod"))}
    assert set(releases) == set(addons.INSTALLED_CHARTS)
    for chart in addons.INSTALLED_CHARTS:
        pin = pins.chart(chart)
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", pin.version), f"{chart}: {pin.version} is not an exact version"
        assert pin.repo.startswith("https://") and pin.source
        assert keys[chart]["version"] == pin.version and keys[chart]["keys"], chart
        assert (releases[chart].version, releases[chart].repo) == (pin.version, pin.repo)


def test_gpu_operator_values_drop_keys_the_chart_no_longer_reads():
    """operator.defaultRuntime is gone from gpu-operator v25.3.x values.yaml: Helm ignored it."""
    gpu = next(a for a in addons.addons(example_stack("medium-prod")) if a.chart == "gpu-operator")
    assert "defaultRuntime" not in gpu.values.get("operator", {})
    assert addons.unknown_keys("gpu-operator", "v25.3.2", {"operator": {"defaultRuntime": "containerd"}}) == [
        "operator.defaultRuntime"]


def test_dcgm_exporter_runs_the_project_counters():
    """The operator's exporter reads the counters from the one metric list (not its default
    dcp-metrics-included.csv, where the ECC double-bit counter is commented out)."""
    for name in ("medium-prod", "medium-eks"):
        gpu = next(a for a in addons.addons(example_stack(name)) if a.chart == "gpu-operator")
        config = gpu.values["dcgmExporter"]["config"]
        assert config == {"name": "tierscale-dcgm-counters", "create": True, "data": dcgm_counters_csv()}
        assert gpu.namespace == "gpu-operator"
        assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter" in config["data"]


def test_rendered_values_use_only_documented_keys():
    for name in ("medium-prod", "medium-eks"):
        for addon in addons.addons(example_stack(name)):
            assert addons.unknown_keys(addon.chart, addon.version, addon.values) == [], addon.release


def test_a_misspelt_key_is_caught():
    values = {"dcgmExporter": {"enabeld": True}, "driver": {"enabled": False}}
    assert addons.unknown_keys("gpu-operator", "v25.3.2", values) == ["dcgmExporter.enabeld"]
    # Map-valued keys accept any content below them.
    assert addons.unknown_keys("keda", "2.17.2", {"resources": {"operator": {"limits": {"memory": "1Gi"}}}}) == []
    # Free-form maps from values.yaml (`nodeSelector: {}`) accept any key below them.
    assert addons.unknown_keys("gpu-operator", "v25.3.2", {"daemonsets": {"labels": {"team": "ml"}}}) == []
    # A chart version without a key list is an error, not a pass.
    assert addons.unknown_keys("keda", "9.9.9", {}) != []


def test_addons_can_be_turned_off():
    stack = example_stack("medium-prod")
    off = stack.spec.model_copy(update={"platform": stack.spec.platform.model_copy(update={
        "keda": stack.spec.platform.keda.model_copy(update={"enabled": False}),
        "gpu_operator": stack.spec.platform.gpu_operator.model_copy(update={"enabled": False}),
    })})
    releases = [a.release for a in addons.addons(replace(stack, spec=off))]
    assert releases == ["kps"]


def test_grafana_password_is_a_placeholder_filled_with_a_secret():
    kps = next(a for a in addons.addons(example_stack("medium-prod")) if a.chart == "kube-prometheus-stack")
    assert kps.values["grafana"]["adminPassword"] == addons.SECRET_VALUE
    assert kps.secret_paths == ("grafana.adminPassword",)
    filled = addons.with_secret(kps.values, "grafana.adminPassword", "s3cret")
    assert filled["grafana"]["adminPassword"] == "s3cret" and kps.values["grafana"]["adminPassword"] == addons.SECRET_VALUE
