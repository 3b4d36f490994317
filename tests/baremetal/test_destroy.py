"""`pulumi destroy` of a bare-metal stack runs ansible/reset.yml (issue #23): a Command resource
whose delete is the reset, never replaced when the inventory changes, deleted before the
inventory files it reads. The reset itself runs on the namespace hosts in test_converge.py."""

from __future__ import annotations

from components.render.stack import render_stack


def test_destroy_runs_the_reset_playbook_before_the_inventory_goes(tmp_path):
    result = render_stack("baremetal-lab", tmp_path / "out")
    commands = {r.name: r for r in result.resources if r.type == "command:local:Command"}
    reset = commands["baremetal-lab-reset"]
    assert reset.inputs["delete"].endswith(" reset.yml") and "ansible-playbook -i" in reset.inputs["delete"]
    assert '-e @$VAULT' in reset.inputs["delete"]
    # Never replaced on an inventory change (a replace would run the reset after the new converge).
    assert reset.inputs["create"] == "true" and not reset.inputs.get("triggers")
    # Deleted first on destroy: it depends on every inventory write and on the converge.
    writes = [r.urn for n, r in commands.items() if n not in ("baremetal-lab-site", "baremetal-lab-verify", "baremetal-lab-reset")]
    assert writes and set(writes) <= set(reset.dependencies)
    assert commands["baremetal-lab-site"].urn in reset.dependencies
    for name, command in commands.items():
        if name != "baremetal-lab-reset":
            assert not (command.inputs.get("delete") or "").endswith("reset.yml"), name
