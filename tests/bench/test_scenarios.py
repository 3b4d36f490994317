"""Scenario files (`tierscale bench --scenario FILE`): every mistake is a named error (exit 2),
never a traceback and never a run of something other than what the file says."""

from __future__ import annotations

import pytest

from components.bench import scenarios
from tests.support.in_process import run_in_process

GOOD = "scenarios:\n  - name: a\n    concurrency: 4\n    requests: 10\n"

# (file text, fragment naming the key, fragment saying what is allowed)
BAD = [
    ("scenarios:\n  - name: a\n    concurrency: 0\n", "scenarios[0] (a).concurrency", ">= 1"),
    ("scenarios:\n  - name: a\n    concurrency: -5\n", "scenarios[0] (a).concurrency", ">= 1"),
    ("scenarios:\n  - name: a\n    rate: 0\n", "scenarios[0] (a).rate", "> 0"),
    ("scenarios:\n  - name: a\n    rate: -2.5\n", "scenarios[0] (a).rate", "> 0"),
    ("scenarios:\n  - name: a\n    rate: .inf\n", "scenarios[0] (a).rate", "finite"),
    ("scenarios:\n  - name: a\n    rate: fast\n", "scenarios[0] (a).rate", "expected_qps"),
    ("scenarios:\n  - name: a\n    duration: 0\n", "scenarios[0] (a).duration", "> 0"),
    ("scenarios:\n  - name: a\n    requests: 0\n", "scenarios[0] (a).requests", ">= 1"),
    ("scenarios:\n  - name: a\n    time_scale: 0\n", "scenarios[0] (a).time_scale", "> 0"),
    ("scenarios:\n  - name: a\n    burstiness: 0\n", "scenarios[0] (a).burstiness", "> 0"),
    ("scenarios:\n  - name: a\n    output_tokens: 0\n", "scenarios[0] (a).output_tokens", ">= 1"),
    ("scenarios:\n  - name: a\n    warmup: -1\n", "scenarios[0] (a).warmup", ">= 0"),
    ("scenarios:\n  - name: a\n    stop_error_rate: 5\n", "scenarios[0] (a).stop_error_rate", "<= 1"),
    ("scenarios:\n  - name: a\n    duration: 10\n    requests: 10\n", "scenarios[0] (a).duration", "not both"),
    ("scenarios:\n  - name: a\n    concurrency: 2.5\n", "scenarios[0] (a).concurrency", "whole number"),
    ("scenarios:\n  - name: a\n    concurrency: true\n", "scenarios[0] (a).concurrency", "wrong type"),
    ("scenarios:\n  - name: a\n    concurency: 4\n", "unknown key 'concurency'", "did you mean 'concurrency'"),
    ("scenarios:\n  - name: a\n  - name: a\n", "scenarios[1].name", "already scenarios[0]"),
    ("scenarios:\n  - name: ''\n", "scenarios[0].name", "non-empty"),
    ("scenarios:\n  - concurrency: 3\n", "scenarios[0].name", "non-empty"),
    ("scenarios:\n  - name: a\n    concurrency: 1\n    concurrency: 2\n", "not valid YAML", "appears twice"),
    ("thresholds:\n  max_error_rate: 1.5\nscenarios:\n  - name: a\n", "thresholds.max_error_rate", "<= 1"),
    ("thresholds:\n  ttft_p99_ms: -1\nscenarios:\n  - name: a\n", "thresholds.ttft_p99_ms", ">= 0"),
    ("scenarios:\n  - name: a\n    thresholds: {max_error_rate: 2}\n", "scenarios[0].thresholds.max_error_rate", "<= 1"),
    ("scenarios:\n  - name: a\n    thresholds: {p99: 2}\n", "scenarios[0].thresholds", "unknown key 'p99'"),
    ("warmup: -3\nscenarios:\n  - name: a\n", "warmup", ">= 0"),
    ("scenarioz:\n  - name: a\n", "scenarios:", "non-empty"),
    ("scenarios: []\n", "scenarios:", "non-empty"),
]


@pytest.mark.parametrize("text,key,allowed", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_scenario_is_a_named_error(tmp_path, text, key, allowed):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(scenarios.ScenarioError) as error:
        scenarios.load(str(path))
    assert key in str(error.value) and allowed in str(error.value), str(error.value)


def test_non_utf8_scenario_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"scenarios:\n  - name: \xff\n")
    with pytest.raises(scenarios.ScenarioError, match="not UTF-8"):
        scenarios.load(str(path))


def test_good_and_shipped_scenarios_load(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    assert [s.name for s in scenarios.load(str(path))] == ["a"]
    assert [s.name for s in scenarios.load("whitepaper")] == ["baseline_latency", "production_simulation", "stress_test"]


def test_cli_exits_2_naming_the_scenario_key(tmp_path):
    """Through the command (in-process): exit 2, the key named, no traceback, nothing sent."""
    for text, key, _ in (BAD[0], BAD[17], BAD[12]):
        path = tmp_path / "s.yaml"
        path.write_text(text)
        r = run_in_process("bench", "--endpoint", "http://127.0.0.1:9", "--model", "m", "--scenario", str(path))
        assert r.returncode == 2, r.stdout + r.stderr
        assert key in r.stderr and "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_a_scenario_dataset_that_does_not_load_names_the_scenario(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("scenarios:\n  - name: a\n    requests: 5\n  - name: replay\n    dataset: sharegpt\n")
    r = run_in_process("bench", "--endpoint", "http://127.0.0.1:9", "--model", "m", "--scenario", str(path))
    assert r.returncode == 2 and "scenario 'replay'.dataset: 'sharegpt' is not" in r.stderr, r.stderr
