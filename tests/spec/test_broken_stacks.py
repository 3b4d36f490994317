"""The broken-stack corpus (broken_stacks.yaml) through the real `tierscale` command.

Every case must exit 2, name its key, print no traceback and write nothing. The cases run in
this process through the console script's own entry (`components.cli:main`, see
tests/support/in_process.py): a subprocess per case spent ~2 s importing before doing anything.
The cases listed in SUBPROCESS also run as a real `tierscale render` process, proving that the
installed command behaves exactly as the in-process entry does.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.support.in_process import run_in_process

CORPUS = yaml.safe_load((Path(__file__).parent / "broken_stacks.yaml").read_text())
CASES = {c["id"]: c for c in CORPUS["cases"]}
# One file-level case (bytes that are not UTF-8), one type error, one placement error: the
# wiring of the real executable (console script, exit code, stderr) for each stage.
SUBPROCESS = ("non-utf8-file", "replicas-yes", "baremetal-host-too-small")


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


def _run(case: dict, work: Path, runner) -> tuple:
    (work / "Pulumi.case.yaml").write_bytes(stack_text(case))
    return runner("render", "--stack", "case", "--stacks-dir", str(work), "--out", str(work / "out")), work


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return {case_id: _run(case, tmp_path_factory.mktemp(case_id), run_in_process) for case_id, case in CASES.items()}


@pytest.fixture(scope="module")
def subprocess_outcomes(tmp_path_factory):
    with ThreadPoolExecutor(max_workers=len(SUBPROCESS)) as pool:
        return dict(zip(SUBPROCESS, pool.map(
            lambda case_id: _run(CASES[case_id], tmp_path_factory.mktemp(f"proc-{case_id}"), run_cli), SUBPROCESS)))


def _assert_refused(case: dict, proc, work: Path) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    for fragment in case["expect"]:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"
    for fragment in case.get("absent", []):
        assert fragment not in proc.stderr, f"{fragment!r} should not be printed:\n{proc.stderr}"
    assert "Traceback" not in output and "internal error" not in output
    assert not (work / "out").exists(), "nothing may be rendered for an invalid stack"


@pytest.mark.parametrize("case_id", list(CASES))
def test_broken_stack_is_refused_naming_the_key(outcomes, case_id):
    _assert_refused(CASES[case_id], *outcomes[case_id])


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_the_installed_command_refuses_as_the_entry_does(subprocess_outcomes, outcomes, case_id):
    proc, work = subprocess_outcomes[case_id]
    _assert_refused(CASES[case_id], proc, work)
    in_process = outcomes[case_id][0]
    assert proc.stderr.replace(str(work), "WORK") == in_process.stderr.replace(str(outcomes[case_id][1]), "WORK")


def test_corpus_covers_every_class_of_issue_10():
    classes = {c["class"] for c in CASES.values()}
    assert {"quantization", "context", "names", "duplicates", "types", "cloud", "placement", "cascade",
            "large", "exposure", "gateway", "hosts"} <= classes
    assert len(CASES) == len(CORPUS["cases"]), "case ids must be unique"
