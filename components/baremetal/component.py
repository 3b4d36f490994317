"""`tierscale:baremetal:BaremetalNodes`: write the inventory and converge the nodes with Ansible."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional

import pulumi

from components import paths
from components.baremetal import inventory
from components.remote_files import Host, digest
from components.spec import ResolvedStack


@dataclass
class BaremetalArgs:
    stack: ResolvedStack
    stack_name: str


class BaremetalNodes(pulumi.ComponentResource):
    """Runs `ansible-playbook site.yml` from this machine when the rendered inventory changes."""

    def __init__(self, name: str, args: BaremetalArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:baremetal:BaremetalNodes", name, None, opts)
        rendered = inventory.files(args.stack)
        self.artifacts = {f"ansible/{p}": c for p, c in rendered.items()}
        workdir = paths.REPO_ROOT / "build" / args.stack_name / "ansible"
        local = Host("localhost")
        child = pulumi.ResourceOptions(parent=self)
        writes = [
            local.write_file(f"{name}-{p.replace('/', '-').replace('.', '-')}", str(workdir / p), c,
                             trigger=digest(c), opts=child)
            for p, c in sorted(rendered.items())
        ]
        playbook = paths.REPO_ROOT / "ansible" / "site.yml"
        self.converge = local.command(
            f"{name}-site",
            create=(f"ansible-playbook -i {shlex.quote(str(workdir / 'inventory.yml'))} "
                    f"-e @{shlex.quote(str(workdir / 'group_vars/all/tierscale.yml'))} {shlex.quote(str(playbook))}"),
            triggers=[digest(*rendered.values())],
            opts=pulumi.ResourceOptions(parent=self, depends_on=writes),
        )
        self.hosts = [h.name for h in args.stack.spec.target.hosts]
        self.register_outputs({"hosts": self.hosts})
