"""The broken-stack corpus (broken_stacks.yaml) through the real `tierscale` command.

Every case must exit 2, name its key, print no traceback and write nothing. The cases run
concurrently (each is a separate `tierscale render` process); the parametrized tests assert on
their results one by one, so a failure names its case.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

CORPUS = yaml.safe_load((Path(__file__).parent / "broken_stacks.yaml").read_text())
CASES = {c["id"]: c for c in CORPUS["cases"]}


def _set(node, path: str, value) -> None:
    """`models.0.quantization` -> node["models"][0]["quantization"] = value."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parents:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[last] = value


def stack_text(case: dict) -> bytes:
    if "raw_hex" in case:
        return bytes.fromhex(case["raw_hex"])
    if "raw" in case:
        return case["raw"].encode()
    config = copy.deepcopy(CORPUS["bases"][case["base"]])
    for path, value in (case.get("set") or {}).items():
        _set(config, path, value)
    for key in case.get("unset") or []:
        del config[key]
    return yaml.safe_dump({"config": {f"tierscale:{k}": v for k, v in config.items()}}, sort_keys=False).encode()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    def run(case):
        work = tmp_path_factory.mktemp(case["id"])
        (work / "Pulumi.case.yaml").write_bytes(stack_text(case))
        proc = run_cli("render", "--stack", "case", "--stacks-dir", str(work), "--out", str(work / "out"))
        return case["id"], (proc, work)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, CASES.values()))


@pytest.mark.parametrize("case_id", list(CASES))
def test_broken_stack_is_refused_naming_the_key(outcomes, case_id):
    case = CASES[case_id]
    proc, work = outcomes[case_id]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    for fragment in case["expect"]:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"
    for fragment in case.get("absent", []):
        assert fragment not in proc.stderr, f"{fragment!r} should not be printed:\n{proc.stderr}"
    assert "Traceback" not in output and "internal error" not in output
    assert not (work / "out").exists(), "nothing may be rendered for an invalid stack"


def test_corpus_covers_every_class_of_issue_10():
    classes = {c["class"] for c in CASES.values()}
    assert {"quantization", "context", "names", "duplicates", "types", "cloud", "placement", "cascade"} <= classes
    assert len(CASES) == len(CORPUS["cases"]), "case ids must be unique"
