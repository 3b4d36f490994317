"""The pinned vLLM image is CUDA 13.0, so a bare-metal stack's driver branch must be R580 or newer.

In process (components.cli:main through tests/support/in_process.py), from the broken-stack
corpus's bare-metal base: a branch below 580 is refused at render (exit 2, `target.driverBranch`
named with what is allowed, nothing written); 580 and later render. The medium tier has no
driver-version key (`platform.gpuOperator.driver` is on/off; the operator installs the R580 pin
from components/pins.yaml), so there is nothing there to refuse.
"""

from __future__ import annotations

import pytest

from components import pins
from components.baremetal.checks import MIN_DRIVER_BRANCH
from components.serving import versions
from tests.spec.test_broken_stacks import stack_text
from tests.support.in_process import run_in_process


def _render(tmp_path, branch: str):
    (tmp_path / "Pulumi.case.yaml").write_bytes(
        stack_text({"base": "baremetal", "set": {"target.driverBranch": branch}}))
    out = tmp_path / "out"
    return run_in_process("render", "--stack", "case", "--stacks-dir", str(tmp_path), "--out", str(out)), out


def test_minimum_is_the_pinned_branch():
    # The default (pins.yaml packages.nvidia_driver_branch) must itself pass the rule.
    assert int(pins.DRIVER_BRANCH) >= MIN_DRIVER_BRANCH == 580
    assert versions.VLLM_IMAGE == "vllm/vllm-openai:v0.32.0"  # a new pin re-checks its CUDA build


@pytest.mark.parametrize("branch", ["570", "535"])
def test_branch_below_r580_is_refused(tmp_path, branch):
    proc, out = _render(tmp_path, branch)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"target.driverBranch: '{branch}' is below R580" in proc.stderr
    assert "CUDA 13.0" in proc.stderr and 'allowed: "580" or a later branch' in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.parametrize("branch", ["580", "590"])
def test_r580_and_later_render(tmp_path, branch):
    proc, out = _render(tmp_path, branch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "driverBranch" not in proc.stderr
