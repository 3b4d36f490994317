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
    """Runs `ansible-playbook site.yml` from this machine when the rendered inventory changes,
    and `reset.yml` when the stack is destroyed."""

    def __init__(self, name: str, args: BaremetalArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:baremetal:BaremetalNodes", name, None, opts)
        rendered = inventory.files(args.stack, args.stack_name)
        self.artifacts = {f"ansible/{p}": c for p, c in rendered.items()}
        workdir = paths.REPO_ROOT / "build" / args.stack_name / "ansible"
        local = Host("localhost")
        child = pulumi.ResourceOptions(parent=self)
        writes = [
            local.write_file(f"{name}-{p.replace('/', '-').replace('.', '-')}", str(workdir / p), c,
                             trigger=digest(c), opts=child)
            for p, c in sorted(rendered.items())
        ]
        ansible_dir = paths.REPO_ROOT / "ansible"
        inventory_file = shlex.quote(str(workdir / "inventory.yml"))
        # group_vars/ sits next to inventory.yml, where Ansible loads it. The vault holding
        # vllm_api_key/vllm_hf_token lives outside build/ (inventory.vault_path) and is passed
        # when present; ANSIBLE_VAULT_PASSWORD_FILE opens it.
        vault = inventory.vault_path(args.stack_name).replace("~", "$HOME", 1)
        run = (f'cd {shlex.quote(str(ansible_dir))} && VAULT="{vault}" && '
               f'ansible-playbook -i {inventory_file} $([ -f "$VAULT" ] && echo "-e @$VAULT")')
        self.converge = local.command(
            f"{name}-site", create=f"{run} site.yml",
            triggers=[digest(*rendered.values())],
            opts=pulumi.ResourceOptions(parent=self, depends_on=writes),
        )
        # verify.yml fails the deployment on bad GPUs, NCCL bandwidth or vLLM health.
        self.verify = local.command(
            f"{name}-verify", create=f"{run} verify.yml",
            triggers=[digest(*rendered.values())],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.converge]),
        )
        # `pulumi destroy` runs reset.yml: the vLLM units (leaders drain before their workers
        # stop), secrets files, group firewall, exporters and their configs come off the hosts.
        # A resource of its own, never replaced (no triggers, a constant command), so a changed
        # inventory re-converges without a reset; it depends on the inventory files, so on
        # destroy it runs while they still exist (Pulumi deletes dependents first).
        self.reset = local.command(
            f"{name}-reset", create="true", delete=f"{run} reset.yml",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*writes, self.converge, self.verify]),
        )
        self.hosts = [h.name for h in args.stack.spec.target.hosts]
        self.register_outputs({"hosts": self.hosts})
