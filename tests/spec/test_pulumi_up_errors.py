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


# --- The Pulumi CLI's project-config rules (pulumi/pulumi@v3.259.0 pkg/workspace/config.go,
# mergeConfig / validateStackConfigValue; sdk/go/common/workspace/project.go, Project.Validate).

import shutil
import textwrap
from pathlib import Path

from components import paths
from components.spec import pulumi_config as cli_rules
from components.spec.pulumi_config import StackValue
from components.spec.stack_file import read_project, read_stack

EXAMPLE_STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in paths.STACKS_DIR.glob("Pulumi.*.yaml"))


def _project(tmp_path: Path, config_block: str) -> Path:
    project = tmp_path / "Pulumi.yaml"
    project.write_text("name: tierscale\nruntime: python\nconfig:\n" + textwrap.indent(textwrap.dedent(config_block), "  "))
    return project


def _stack(tmp_path: Path, name: str, body: str) -> Path:
    stacks = tmp_path / "stacks"
    stacks.mkdir(exist_ok=True)
    (stacks / f"Pulumi.{name}.yaml").write_text(textwrap.dedent(body))
    return stacks


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_example_stack_passes_the_cli_config_rules(stack):
    """The shipped Pulumi.yaml + each stacks/ file: nothing `pulumi up` would refuse."""
    project = read_project()
    assert cli_rules.validate_project(project) == []
    config = read_stack(stack)  # raises SpecError on a CLI refusal
    assert config.values["tierscale:tier"]


def test_project_key_without_default_missing_from_a_stack_is_refused_with_the_cli_message(tmp_path):
    """The bug of issue #20: `large` declared without default refused every stack but large-prod."""
    project = _project(tmp_path, """\
        tier: {type: string}
        large: {description: 'Large tier'}
    """)
    stacks = _stack(tmp_path, "small-dev", "config:\n  tierscale:tier: small\n")
    with pytest.raises(SpecError) as caught:
        read_stack("small-dev", stacks, project)
    rendered = caught.value.render()
    assert "large: required key is missing" in rendered
    assert "Stack 'small-dev' is missing configuration value 'large'" in rendered
    assert "pkg/workspace/config.go" in rendered


def test_the_shipped_project_of_before_the_fix_is_refused_for_small_dev(tmp_path):
    """Pulumi.yaml as it was (with `large:` and no default) fails the rule; the current one passes."""
    old = tmp_path / "Pulumi.yaml"
    text = paths.PROJECT_FILE.read_text()
    old.write_text(text.rstrip("\n").replace("config:\n", "config:\n  large:\n    description: Large tier\n", 1) + "\n")
    with pytest.raises(SpecError, match="Stack 'small-dev' is missing configuration value 'large'"):
        read_stack("small-dev", paths.STACKS_DIR, old)
    read_stack("small-dev", paths.STACKS_DIR, paths.PROJECT_FILE)


@pytest.mark.parametrize("missing,message", [
    # The CLI's own expectations (pkg/workspace/config_project_test.go@v3.259.0).
    (["values"], "Stack 'dev' is missing configuration value 'values'"),
    (["values", "another"], "Stack 'dev' is missing configuration values 'another' and 'values'"),
    (["world", "values", "hello"], "Stack 'dev' is missing configuration values 'hello', 'values' and 'world'"),
])
def test_missing_keys_message_matches_the_cli(missing, message):
    project = {"name": "tierscale", "config": {k: {"type": "string"} for k in missing}}
    _, errors = cli_rules.merge_project_config("dev", project, {})
    assert [k for k, _ in errors] == sorted(missing)
    assert {m.split("`pulumi up`: ", 1)[1] for _, m in errors} == {message}


@pytest.mark.parametrize("decl,stack_value,ok", [
    ({"type": "integer"}, StackValue("8000"), True),
    ({"type": "integer"}, StackValue("80.5"), False),
    ({"type": "boolean"}, StackValue("true"), True),
    ({"type": "boolean"}, StackValue("yes"), False),
    ({"type": "string"}, StackValue("5"), True),            # a YAML scalar reaches the check as text
    ({"type": "string"}, StackValue('{"a": 1}', object=True), False),
    ({"type": "array", "items": {"type": "integer"}}, StackValue("[1, 2]", object=True), True),
    ({"type": "array", "items": {"type": "integer"}}, StackValue('["x"]', object=True), False),
])
def test_typed_keys_are_checked_like_the_cli(decl, stack_value, ok):
    project = {"name": "tierscale", "config": {"k": decl}}
    _, errors = cli_rules.merge_project_config("dev", project, {"tierscale:k": stack_value})
    if ok:
        assert errors == []
    else:
        full_type = cli_rules.infer_full_type_name(decl["type"], decl.get("items"))
        assert errors == [("k", f"Stack 'dev' with configuration key 'k' must be of type '{full_type}'")]


def test_secret_key_needs_an_encrypted_value_even_from_its_default():
    """validateStackConfigValue runs on the merged config: a `secret: true` key whose default
    fills it is plaintext and refused, so tierscale declares its secrets without `secret: true`."""
    project = {"name": "tierscale", "config": {"apiKey": {"type": "string", "secret": True, "default": ""}}}
    _, errors = cli_rules.merge_project_config("dev", project, {})
    assert errors == [("apiKey", "Stack 'dev' with configuration key 'apiKey' must be encrypted as it's secret")]
    _, errors = cli_rules.merge_project_config("dev", project, {"tierscale:apiKey": StackValue("[secret]", secure=True)})
    assert errors == []


@pytest.mark.parametrize("config,message", [
    ({"a": {"type": "integer", "default": "x"}}, "The default value specified for configuration key 'a' is not of the expected type 'integer'"),
    ({"a": {"type": "array"}}, "The configuration key 'a' declares an array but does not specify the underlying type via the 'items' attribute"),
    ({"a": {"default": 1, "value": 2}}, "project config 'a' cannot have both a 'default' and 'value' attribute"),
    ({"aws:region": {"default": "us-east-1"}}, "Configuration key 'aws:region' is not namespaced by the project and should not define a default value. Did you mean to use the 'value' attribute instead of 'default'?"),
])
def test_project_file_rules(config, message):
    assert cli_rules.validate_project({"name": "tierscale", "config": config}) == [message]


def test_generated_project_declares_without_default_only_required_spec_keys():
    """Every key Pulumi.yaml declares with neither default nor value is one the spec requires."""
    from components.spec.model import StackSpec
    from components.spec.reference import project_config

    required = {f.alias for f in StackSpec.model_fields.values() if f.is_required()}
    no_default = {k for k, d in project_config().items() if "default" not in d and "value" not in d}
    assert no_default == required
