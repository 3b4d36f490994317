"""`render --out DIR` replaces only what tierscale wrote, through the real CLI.

Rules (components/render/stack.py): the directory gets a `.tierscale-render` marker listing
the files of the render; a re-render removes only those and writes the new ones. Anything
else in the directory (a foreign directory, or a user file put inside a rendered one) makes
render refuse with exit 2 on `--out`, changing nothing. Files at paths the render writes
itself (what `tierscale inventory` writes) are replaced even without the marker.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

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


# --- links: no write follows a symlink or a hard link inside --out (issue #18 item 5) ---------
# A stack with a subdirectory (ansible/) and few files.
LINK_STACK = "baremetal-lab"

def test_symlink_at_the_old_marker_temp_path_is_not_written_through(tmp_path):
    out = tmp_path / "out"
    assert render(LINK_STACK, out).returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / (MARKER + ".tmp")).symlink_to(victim)
    proc = render(LINK_STACK, out)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    assert json.loads((out / MARKER).read_text())["stack"] == LINK_STACK
    assert not (out / (MARKER + ".tmp")).is_symlink()


def test_symlinked_output_file_is_refused_naming_it(tmp_path):
    out = tmp_path / "out"
    assert render(LINK_STACK, out).returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / "plan.json").unlink()
    (out / "plan.json").symlink_to(victim)
    proc = render(LINK_STACK, out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--out" in proc.stderr and "plan.json is a symlink" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_text() == "precious\n"


def test_hard_linked_output_file_is_replaced_not_written_through(tmp_path):
    out = tmp_path / "out"
    assert render(LINK_STACK, out).returncode == 0
    other = tmp_path / "other-name.json"
    other.write_text("the other link's content\n")
    (out / "plan.json").unlink()
    os.link(other, out / "plan.json")  # one inode, two names
    proc = render(LINK_STACK, out)
    assert proc.returncode == 0, proc.stderr
    assert other.read_text() == "the other link's content\n"
    assert json.loads((out / "plan.json").read_text())  # the render's own file, a new inode
    assert os.stat(out / "plan.json").st_ino != os.stat(other).st_ino


def test_symlinked_subdirectory_is_refused_naming_it(tmp_path):
    out = tmp_path / "out"
    assert render(LINK_STACK, out).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "ansible", elsewhere)  # the same files, now outside --out
    (out / "ansible").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    proc = render(LINK_STACK, out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--out" in proc.stderr and "ansible is a symlinked directory" in proc.stderr
    assert snapshot(elsewhere) == before


def test_write_render_never_follows_a_link_planted_after_the_checks(tmp_path, monkeypatch):
    """The O_NOFOLLOW directory walk, not only the up-front check: a symlinked directory the
    check did not see (planted in a race) stops the write instead of going through it."""
    from components.render import stack as render_stack
    from components.spec import SpecError

    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    render_stack.write_render(out, "x", {"sub/file.txt": "x\n"})
    shutil.rmtree(out / "sub")

    listed = render_stack._existing_entries

    def plant(out):  # after the up-front checks (the last of them lists the directory)
        entries = listed(out)
        (out / "sub").symlink_to(elsewhere, target_is_directory=True)
        return entries

    monkeypatch.setattr(render_stack, "_existing_entries", plant)
    with pytest.raises(SpecError, match="sub: .*render never writes through a link"):
        render_stack.write_render(out, "x", {"sub/file.txt": "y\n"})
    assert list(elsewhere.iterdir()) == []
