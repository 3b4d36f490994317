"""Write files and run commands on a host, locally or over SSH, with pulumi-command.

Content travels on the command's stdin, so it is part of the resource inputs: Pulumi shows
changes in the diff, marks secret content secret, and re-runs the command only when the
content (its trigger) changes.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_command as command

LOCAL_HOSTS = ("localhost", "127.0.0.1")


def digest(*contents: str) -> str:
    h = hashlib.sha256()
    for c in contents:
        h.update(c.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class Host:
    """Where commands run: the local machine or an SSH connection."""

    address: str
    user: str = "root"
    port: int = 22
    private_key: Optional[pulumi.Input[str]] = None
    host_key: Optional[str] = None

    @property
    def is_local(self) -> bool:
        return self.address in LOCAL_HOSTS

    def command(self, name: str, *, create: str, delete: Optional[str] = None,
                stdin: Optional[pulumi.Input[str]] = None, triggers: Sequence[pulumi.Input] = (),
                opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        if self.is_local:
            return command.local.Command(name, create=create, delete=delete, stdin=stdin,
                                         triggers=list(triggers), opts=opts)
        connection = command.remote.ConnectionArgs(
            host=self.address, user=self.user, port=self.port,
            private_key=self.private_key, host_key=self.host_key,
        )
        return command.remote.Command(name, connection=connection, create=create, delete=delete,
                                      stdin=stdin, triggers=list(triggers), opts=opts)

    def write_file(self, name: str, path: str, content: pulumi.Input[str], *, mode: str = "0644",
                   trigger: pulumi.Input, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        directory = shlex.quote(posixpath.dirname(path))
        quoted = shlex.quote(path)
        create = f"install -d -m 0755 {directory} && umask 077 && cat > {quoted}.tmp && chmod {mode} {quoted}.tmp && mv {quoted}.tmp {quoted}"
        return self.command(name, create=create, delete=f"rm -f {quoted}", stdin=content,
                            triggers=[trigger], opts=opts)
