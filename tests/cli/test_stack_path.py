"""`--stack` takes a stack name or a path to a Pulumi.<name>.yaml file (the name from the file name,
its directory the stacks directory)."""

from __future__ import annotations

import shutil

import pytest

from components import paths
from components.spec import SpecError
from components.spec.stack_file import resolve_stack_ref
from tests.cli.conftest import one_json_document


def test_a_name_stays_a_name_even_with_dots():
    assert resolve_stack_ref("small-dev") == ("small-dev", paths.STACKS_DIR)
    assert resolve_stack_ref("Prod.EU", paths.STACKS_DIR) == ("Prod.EU", paths.STACKS_DIR)


def test_a_path_gives_the_name_and_the_directory(tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.small-dev.yaml", tmp_path / "Pulumi.mine.yaml")
    assert resolve_stack_ref(str(tmp_path / "Pulumi.mine.yaml")) == ("mine", tmp_path)
    assert resolve_stack_ref("stacks/Pulumi.small-dev.yaml")[0] == "small-dev"


@pytest.mark.parametrize("value", ["stacks/small-dev.yaml", "stacks/Pulumi..yaml", "/nowhere/Pulumi.x.yaml"])
def test_other_files_are_refused_on_the_stack_option(value):
    with pytest.raises(SpecError) as caught:
        resolve_stack_ref(value)
    assert caught.value.problems[0].path == "--stack" and "Pulumi.<name>.yaml" in caught.value.render()


def test_migrate_check_takes_a_stack_file_elsewhere(tierscale, tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.small-dev.yaml", tmp_path / "Pulumi.elsewhere.yaml")
    proc = tierscale("migrate", "check", "--stack", str(tmp_path / "Pulumi.elsewhere.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert one_json_document(proc)["stack"] == "elsewhere"


def test_a_bad_stack_path_exits_2_naming_the_option(tierscale, tmp_path):
    (tmp_path / "stack.yaml").write_text("config: {}\n")
    proc = tierscale("render", "--stack", str(tmp_path / "stack.yaml"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--stack" in proc.stderr and "Pulumi.<name>.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_migrate_plan_from_and_to_take_stack_files(tierscale, tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.medium-prod.yaml", tmp_path / "Pulumi.next.yaml")
    proc = tierscale("migrate", "plan", "--from", "stacks/Pulumi.small-dev.yaml", "--to", str(tmp_path / "Pulumi.next.yaml"),
                     "--accept", "removed-model", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert (doc["source"], doc["destination"]) == ("small-dev", "next")
    proc = tierscale("migrate", "plan", "--from", "small-dev", "--to", str(tmp_path / "next.yaml"))
    assert proc.returncode == 2 and "  - --to: " in proc.stderr, proc.stderr
