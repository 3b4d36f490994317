"""Run the `tierscale` command in this process, as the installed entry point does.

`components.cli:main` is what the console script calls (pyproject.toml `[project.scripts]`):
the same argument parsing, the same SpecError -> exit 2 and internal error -> exit 70
handling, the same stdout/stderr. Running it here spares the ~2 s a new interpreter spends
importing pydantic, Pulumi and the catalog, which is most of a broken-stack case's cost.
Calls are serialized (stdout/stderr are process-wide); the result has the shape of
subprocess.CompletedProcess so a test reads it the same either way.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading

_LOCK = threading.Lock()


def run_in_process(*args: str) -> subprocess.CompletedProcess:
    from components import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with _LOCK, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        argv, sys.argv = sys.argv, ["tierscale", *args]
        try:
            cli.main()
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        finally:
            sys.argv = argv
    return subprocess.CompletedProcess(["tierscale", *args], code, stdout.getvalue(), stderr.getvalue())
