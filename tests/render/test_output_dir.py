"""`render --out DIR` replaces only what tierscale wrote, through the real CLI.

Rules (components/render/stack.py): the directory gets a `.tierscale-render` marker listing
the files of the render; a re-render removes only those and writes the new ones. Anything
else in the directory (a foreign directory, or a user file put inside a rendered one) makes
render refuse with exit 2 on `--out`, changing nothing. Files at paths the render writes
itself (what `tierscale inventory` writes) are replaced even without the marker.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.render.stack import MARKER
from tests.conftest import run_cli


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def render(stack: str, out: Path):
    return run_cli("render", "--stack", stack, "--out", str(out))


def test_foreign_non_empty_directory_is_refused_and_untouched(tmp_path):
    out = tmp_path / "mine"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "todo.txt").write_text("do not delete\n")
    (out / "resources.json").write_text("{}\n")  # a name render uses does not make it ours
    before = snapshot(out)
    proc = render("small-dev", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--out" in proc.stderr and MARKER in proc.stderr and "notes/todo.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(out) == before


def test_out_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "file"
    out.write_text("x\n")
    proc = render("small-dev", out)
    assert proc.returncode == 2 and "--out" in proc.stderr, proc.stderr
    assert out.read_text() == "x\n"


def test_rerender_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "out"
    assert render("small-dev", out).returncode == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["tool"] == "tierscale" and marker["stack"] == "small-dev" and marker["version"]
    assert sorted(marker["files"]) == sorted(snapshot(out).keys() - {MARKER})
    assert any(f.startswith("compose/") for f in marker["files"])

    # Another stack into the same directory: the first render's files go, directories included.
    proc = render("baremetal-lab", out)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((out / MARKER).read_text())
    assert after["stack"] == "baremetal-lab"
    assert sorted(after["files"]) == sorted(snapshot(out).keys() - {MARKER})
    assert not (out / "compose").exists()
    assert (out / "ansible" / "inventory.yml").is_file()


def test_user_file_inside_a_rendered_directory_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    assert render("baremetal-lab", out).returncode == 0
    # Where the README once told users to keep the Ansible vault.
    vault = out / "ansible" / "group_vars" / "all" / "vault.yml"
    vault.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    before = snapshot(out)
    proc = render("baremetal-lab", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--out" in proc.stderr and "ansible/group_vars/all/vault.yml" in proc.stderr
    assert snapshot(out) == before


def test_files_tierscale_inventory_wrote_are_replaced_without_a_marker(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("inventory", "--stack", "baremetal-lab", "--out", str(out / "ansible"))
    assert proc.returncode == 0, proc.stderr
    (out / "ansible" / "inventory.yml").write_text("# an older inventory\n")
    proc = render("baremetal-lab", out)
    assert proc.returncode == 0, proc.stderr
    assert "an older inventory" not in (out / "ansible" / "inventory.yml").read_text()
    assert "ansible/inventory.yml" in json.loads((out / MARKER).read_text())["files"]


def test_empty_directory_is_used(tmp_path):
    proc = render("small-dev", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / MARKER).is_file() and (tmp_path / "resources.json").is_file()
