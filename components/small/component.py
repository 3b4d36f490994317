"""`tierscale:small:SmallTier`: the Compose project deployed to one Docker host."""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_random as random

from components.remote_files import Host, digest
from components.serving.vllm_args import API_KEY_ENV, HF_TOKEN_ENV
from components.serving import model_router
from components.small.project import GATEWAY_AUTH, GRAFANA_ENV, GRAFANA_PORT, SECRETS_ENV, compose_project
from components.spec import ResolvedStack
from components.spec.model import DockerHostTarget


@dataclass
class SmallTierArgs:
    stack: ResolvedStack
    stack_name: str
    api_key: Optional[pulumi.Input[str]] = None
    hf_token: Optional[pulumi.Input[str]] = None
    ssh_private_key: Optional[pulumi.Input[str]] = None


def _secrets_env(api_key: Optional[str], hf_token: Optional[str]) -> str:
    lines = []
    if api_key:
        lines.append(f"{API_KEY_ENV}={api_key}")
    if hf_token:
        lines.append(f"{HF_TOKEN_ENV}={hf_token}")
    return "\n".join(lines) + "\n"


class SmallTier(pulumi.ComponentResource):
    """Writes the Compose project to `target.deployDir` and runs `docker compose up --wait`."""

    def __init__(self, name: str, args: SmallTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:small:SmallTier", name, None, opts)
        target = args.stack.spec.target
        assert isinstance(target, DockerHostTarget)
        files = compose_project(args.stack, args.stack_name)
        # What `tierscale render` writes: the same strings the commands below deploy.
        self.artifacts: dict[str, str] = {f"compose/{path}": content for path, content in files.items()}
        host = Host(target.host, target.ssh.user, target.ssh.port, args.ssh_private_key, target.ssh.host_key)
        child = pulumi.ResourceOptions(parent=self)

        writes = [
            host.write_file(f"{name}-file-{path.replace('/', '-').replace('.', '-')}",
                            posixpath.join(target.deploy_dir, path), content,
                            trigger=digest(content), opts=child)
            for path, content in sorted(files.items())
        ]
        secrets = pulumi.Output.secret(
            pulumi.Output.all(args.api_key, args.hf_token).apply(lambda v: _secrets_env(v[0], v[1]))
        )
        writes.append(host.write_file(
            f"{name}-secrets-env", posixpath.join(target.deploy_dir, SECRETS_ENV), secrets,
            mode="0600", trigger=secrets, opts=child,
        ))
        gateway_auth = None
        if args.stack.spec.gateway.kind == "nginx" and args.stack.spec.security.api_auth:
            # The gateway authenticates clients itself: the key's SHA-256 digest in the include
            # nginx.conf reads (never the key), still a secret file, mounted read-only.
            gateway_auth = pulumi.Output.secret(pulumi.Output.from_input(args.api_key).apply(
                lambda key: model_router.auth_include([key] if key else [])))
            writes.append(host.write_file(
                f"{name}-gateway-auth", posixpath.join(target.deploy_dir, GATEWAY_AUTH), gateway_auth,
                mode="0600", trigger=gateway_auth, opts=child,
            ))
        self.grafana_admin_password: Optional[pulumi.Output[str]] = None
        if args.stack.spec.monitoring.enabled:
            # Never Grafana's admin/admin default: a generated password kept in Pulumi state as
            # a secret (`pulumi stack output grafanaAdminPassword --show-secrets`).
            password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child)
            self.grafana_admin_password = pulumi.Output.secret(password.result)
            grafana_env = pulumi.Output.secret(password.result.apply(
                lambda p: f"GF_SECURITY_ADMIN_USER=admin\nGF_SECURITY_ADMIN_PASSWORD={p}\n"))
            writes.append(host.write_file(
                f"{name}-grafana-env", posixpath.join(target.deploy_dir, GRAFANA_ENV), grafana_env,
                mode="0600", trigger=grafana_env, opts=child,
            ))
        compose = (f"docker compose -p {shlex.quote('tierscale-' + args.stack_name)} "
                   f"-f {shlex.quote(posixpath.join(target.deploy_dir, 'compose.yaml'))}")
        # --wait blocks until every healthcheck passes, so `pulumi up` fails if a model never
        # becomes healthy; re-run only when a rendered file changed.
        self.compose_up = host.command(
            f"{name}-compose-up",
            create=f"{compose} up -d --wait --remove-orphans",
            delete=f"{compose} down",
            triggers=[digest(*(files[p] for p in sorted(files)))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=writes),
        )
        if gateway_auth is not None:
            # A new key reaches the running gateway by a reload (compose up does not restart a
            # container whose mounted file changed).
            host.command(
                f"{name}-gateway-auth-reload", create=f"{compose} exec -T gateway nginx -s reload",
                triggers=[gateway_auth], opts=pulumi.ResourceOptions(parent=self, depends_on=[self.compose_up]),
            )
        scheme = "https" if args.stack.spec.security.tls.enabled else "http"
        self.endpoint = pulumi.Output.from_input(f"{scheme}://{target.host}:{args.stack.spec.gateway.port}/v1")
        self.models = [m.served_model_name for m in args.stack.models]
        self.grafana_url = (pulumi.Output.from_input(f"http://127.0.0.1:{GRAFANA_PORT} (on {target.host})")
                            if self.grafana_admin_password is not None else None)
        self.register_outputs({"endpoint": self.endpoint, "models": self.models,
                               "grafana_url": self.grafana_url, "grafana_admin_password": self.grafana_admin_password})
