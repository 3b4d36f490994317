"""Planted secrets never appear in plaintext in rendered files, outputs or CLI output."""

from __future__ import annotations

import pytest

from components.render import render_stack
from tests.support.stacks import EXAMPLE_STACKS

PLANTED = {
    "tierscale:apiKey": "sk-PLANTED-api-key-7f3a9c",
    "tierscale:hfToken": "hf_PLANTEDtoken0123456789",
}


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_planted_secrets_never_reach_rendered_files(stack, tmp_path, capsys):
    result = render_stack(stack, tmp_path, extra_config=PLANTED, extra_secret_keys=set(PLANTED))
    assert {"apiKey", "hfToken"} <= result.stack.secrets_present
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        for secret in PLANTED.values():
            assert secret not in text, f"{secret!r} leaked into {path}"
    captured = capsys.readouterr()
    for secret in PLANTED.values():
        assert secret not in captured.out + captured.err
        assert secret not in repr(result.outputs)


def test_secret_inputs_are_masked_not_dropped(tmp_path):
    result = render_stack("small-dev", tmp_path, extra_config=PLANTED, extra_secret_keys=set(PLANTED))
    env = [r for r in result.resources if r.name.endswith("secrets-env")][0]
    assert env.inputs["stdin"] == "[secret]"
