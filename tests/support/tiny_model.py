"""The tiny random-weight Llama the real vLLM serves in tests (and `tierscale validate` builds
engine configs with): generated offline by components/validate/tiny_model.py under the vLLM
virtualenv's Python, cached in build/tiny-llama (TIERSCALE_TINY_MODEL).

    model_dir = tiny_model()         # builds once (about 5 s), then reuses the directory
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from components.validate import vllm_parser

SERVED_NAME = "tiny-llama"


def tiny_model(directory: Path | None = None) -> Path:
    directory = Path(directory or vllm_parser.TINY_MODEL_DIR)
    python = vllm_parser.vllm_python()
    if not python.exists():
        raise FileNotFoundError(f"{python} missing: make setup creates .venv-vllm")
    subprocess.run([str(python), str(vllm_parser.TINY_MODEL_SCRIPT), str(directory)], check=True,
                   capture_output=True, text=True, timeout=600)
    return directory


def max_position_embeddings(directory: Path) -> int:
    return json.loads((Path(directory) / "config.json").read_text())["max_position_embeddings"]
