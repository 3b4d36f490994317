"""Helm add-ons: pinned charts, values that follow the stack, no undocumented keys."""

from __future__ import annotations

import re
from dataclasses import replace

import yaml

from components.medium import addons
from tests.support.stacks import example_stack


def test_every_chart_is_pinned_and_has_a_key_list():
    known = yaml.safe_load(addons.CHARTS_FILE.read_text())
    assert set(known) == {"gpu-operator", "keda", "kube-prometheus-stack"}
    for chart, entry in known.items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", entry["version"]), f"{chart}: {entry['version']} is not an exact version"
        assert entry["repo"].startswith("https://") and entry["keys"]
    releases = {a.chart: a for a in addons.addons(example_stack("medium-prod"))}
    assert {c: a.version for c, a in releases.items()} == {c: e["version"] for c, e in known.items()}


def test_rendered_values_use_only_documented_keys():
    for name in ("medium-prod", "medium-eks"):
        for addon in addons.addons(example_stack(name)):
            assert addons.unknown_keys(addon.chart, addon.version, addon.values) == [], addon.release


def test_a_misspelt_key_is_caught():
    values = {"dcgmExporter": {"enabeld": True}, "driver": {"enabled": False}}
    assert addons.unknown_keys("gpu-operator", "v25.3.2", values) == ["dcgmExporter.enabeld"]
    # Map-valued keys accept any content below them.
    assert addons.unknown_keys("keda", "2.17.2", {"resources": {"operator": {"limits": {"memory": "1Gi"}}}}) == []
    # A chart version without a reviewed key list is an error, not a pass.
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
