"""Alert rules: `promtool check rules`, and `promtool test rules` with hand-written cases
showing every alert firing and not firing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.observability import alerts
from components.observability.metrics import KNOWN_SERIES
from components.observability.promql import referenced_metrics
from components.spec.model import SloSpec

CASES = Path(__file__).with_name("alerts_test.yml")
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _rules_file(tmp: Path, slo: SloSpec | None = None) -> Path:
    path = tmp / "tierscale-alerts.yml"
    path.write_text(yaml.safe_dump({"groups": alerts.rule_groups(slo or SloSpec())}, sort_keys=False))
    return path


def _fill(template: str, labels: dict) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: str(labels[m.group(1)]), template)


def _with_annotations(cases: dict, rules: dict[str, alerts.AlertRule]) -> dict:
    """Expected annotations are the rule's templates with the expected labels substituted."""
    for test in cases["tests"]:
        for check in test["alert_rule_test"]:
            rule = rules[check["alertname"]]
            for exp in check["exp_alerts"]:
                labels = exp["exp_labels"]
                exp["exp_annotations"] = {"summary": _fill(rule.summary, labels), "description": _fill(rule.description, labels)}
    return cases


def test_promtool_check_rules(tmp_path):
    proc = subprocess.run([PROMTOOL, "check", "rules", str(_rules_file(tmp_path))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alerts.alert_rules(SloSpec()))} rules found" in proc.stdout


def test_every_alert_fires_and_stays_quiet_in_promtool(tmp_path):
    _rules_file(tmp_path)
    rules = {r.alert: r for r in alerts.alert_rules(SloSpec())}
    cases = _with_annotations(yaml.safe_load(CASES.read_text()), rules)
    fired = {c["alertname"] for t in cases["tests"] for c in t["alert_rule_test"] if c["exp_alerts"]}
    quiet = {c["alertname"] for t in cases["tests"] for c in t["alert_rule_test"] if not c["exp_alerts"]}
    assert fired == set(rules), f"alerts without a firing case: {set(rules) - fired}"
    assert quiet == set(rules), f"alerts without a not-firing case: {set(rules) - quiet}"
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(cases, sort_keys=False))
    proc = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_catches_a_wrong_expectation(tmp_path):
    """The harness can fail: expecting the fast model to alert must fail promtool."""
    _rules_file(tmp_path)
    rules = {r.alert: r for r in alerts.alert_rules(SloSpec())}
    cases = _with_annotations(yaml.safe_load(CASES.read_text()), rules)
    cases["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]["model"] = "fast"
    cases = _with_annotations(cases, rules)
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(cases, sort_keys=False))
    proc = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0


def test_slo_thresholds_reach_the_rules():
    exprs = {r.alert: r.expr for r in alerts.alert_rules(SloSpec.model_validate({"ttftP99Ms": 250, "tpotP99Ms": 40}))}
    assert exprs["VllmTtftP99High"].endswith("> 0.25")
    assert exprs["VllmTpotP99High"].endswith("> 0.04")


@pytest.mark.parametrize("rule", alerts.alert_rules(SloSpec()), ids=lambda r: r.alert)
def test_rule_uses_only_listed_metrics(rule):
    used = referenced_metrics(rule.expr)
    assert used and used <= KNOWN_SERIES
