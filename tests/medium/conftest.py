"""Rendered medium-tier stacks shared by the medium tests (rendering is the slow part)."""

from __future__ import annotations

import json

import pytest

from components.render import render_stack

GITOPS = {"tierscale:platform": json.dumps({
    "gitops": {"repoUrl": "https://git.example.com/platform/inference.git", "path": "clusters/prod/tierscale"}})}


@pytest.fixture(scope="session")
def medium(tmp_path_factory):
    out = tmp_path_factory.mktemp("medium")
    return {
        "medium-prod": render_stack("medium-prod", out / "medium-prod"),
        "medium-eks": render_stack("medium-eks", out / "medium-eks"),
        "medium-gitops": render_stack("medium-prod", out / "medium-gitops", extra_config=GITOPS),
    }
