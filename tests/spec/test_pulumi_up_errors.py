"""Under `pulumi up` (secrets required), a bad stack fails before any resource is registered."""

from __future__ import annotations

import pytest

from components import program
from components.render.mock_runtime import run_with_mocks
from components.spec import SpecError

BASE = {
    "tierscale:tier": "small",
    "tierscale:target": '{"kind": "docker-host", "host": "localhost"}',
    "tierscale:gpu": '{"type": "l40s", "perNode": 4}',
    "tierscale:models": '[{"id": "meta-llama/Llama-3.1-8B-Instruct", "replicas": 2}]',
}



@pytest.mark.parametrize("extra,expected", [
    ({}, "apiKey: required because security.apiAuth is true"),
    ({"tierscale:apiKey": "k"}, "hfToken: required because model(s) llama-31-8b are gated"),
    ({"tierscale:target": '{"kind": "docker-host", "host": "gpu1.example.com"}'}, "sshPrivateKey: required because target.host 'gpu1.example.com'"),
])
def test_missing_secret_fails_before_registration(extra, expected):
    config = {**BASE, **extra}
    secrets = [k for k in config if k.endswith(("apiKey", "hfToken"))]
    recorded = {}

    def capture():
        try:
            program.run("case", require_secrets=True)
        except SpecError as error:
            recorded["error"] = error

    _, monitor = run_with_mocks("tierscale", "case", config, set(secrets), capture)
    assert expected in recorded["error"].render()
    assert monitor.registered == [], "no resource may be registered for an invalid stack"


def test_main_turns_spec_error_into_run_error_without_traceback():
    """__main__.py raises pulumi.RunError, which Pulumi prints as a plain message."""
    import pulumi
    import runpy

    caught = {}

    def program_body():
        try:
            runpy.run_path("__main__.py")
        except pulumi.RunError as error:
            caught["message"] = str(error)

    run_with_mocks("tierscale", "case", dict(BASE), set(), program_body)
    assert "apiKey: required" in caught["message"]
    assert "Traceback" not in caught["message"]
