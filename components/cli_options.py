"""What every `tierscale` command shares, declared once: options, exit codes, JSON and text output.

Options (use the Annotated aliases as parameter types, docs/reference/cli-conventions.md):
  --stack/-s NAME|FILE   a stack name (stacks/Pulumi.<name>.yaml) or a path to a Pulumi.<name>.yaml
                         file: the name comes from the file name, its directory is the stacks dir
  --stacks-dir DIR       where stack names are looked up (default stacks/)
  --out DIR              where a command writes files (each command says what and its default)
  --json                 a flag: one JSON object on stdout and nothing else on stdout; messages,
                         warnings and progress go to stderr; on exit 2/70 stdout stays empty
  --verbose/-v           details a summary leaves out

Exit codes (EXIT_CODES; the same table in every command's help epilog and the docs page):
  0 success; 1 a check failed (a validator, `validate --strict` warnings, a due tier change, a
  benchmark SLO gate, `migrate run` rolled back); 2 invalid input (the message names the option or
  key and what is allowed); 3 `migrate run`: the rollback could not be applied or verified;
  70 an internal error (TIERSCALE_DEBUG=1 shows the traceback).

Text output wraps instead of cutting: tables fold long cells (no ellipsis) at any width, and a
command the user is meant to copy is written whole on its own line with plain sys.stdout, never
through rich's wrapping (print_command).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from components import paths
from components.spec import SpecError

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_INVALID_INPUT = 2
EXIT_ROLLBACK_UNVERIFIED = 3
EXIT_INTERNAL = 70

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "a check failed (a validator, --strict warnings, a due tier change, an SLO gate, "
                       "migrate run rolled back)",
    EXIT_INVALID_INPUT: "invalid input: the message names the option or key and what is allowed",
    EXIT_ROLLBACK_UNVERIFIED: "migrate run: the rollback could not be applied or verified",
    EXIT_INTERNAL: "internal error (TIERSCALE_DEBUG=1 shows the traceback)",
}

EXIT_CODES_EPILOG = "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()) + "."

STACK_HELP = ("Stack name (stacks/Pulumi.<name>.yaml) or a path to a Pulumi.<name>.yaml file "
              "(its directory is then the stacks directory)")
JSON_HELP = "Print one JSON object on stdout and nothing else there (messages go to stderr)"

# Parameter types: `stack: StackOption`, `stacks_dir: StacksDirOption = paths.STACKS_DIR`, ...
StackOption = Annotated[str, typer.Option("--stack", "-s", help=STACK_HELP, show_default=False)]
OptionalStackOption = Annotated[Optional[str], typer.Option("--stack", "-s", help=STACK_HELP, show_default=False)]
StacksDirOption = Annotated[Path, typer.Option("--stacks-dir", help="Directory of stack files (for a stack name)")]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show the details a summary leaves out")]
DEFAULT_STACKS_DIR = paths.STACKS_DIR


def optional_stack_option(what: str):
    """`--stack/-s NAME|FILE` for a command where a stack is optional: `what` says what it does with one."""
    return Annotated[Optional[str], typer.Option("--stack", "-s", help=f"{what}. {STACK_HELP}", show_default=False)]


def out_option(help: str):
    """`--out DIR`; each command says what it writes there and its default."""
    return Annotated[Optional[Path], typer.Option("--out", help=help, show_default=False)]


# --- errors ---------------------------------------------------------------------------------


def fail_spec(error: SpecError) -> NoReturn:
    """A SpecError (names the key or option and what is allowed): plain stderr, exit 2. Plain, not
    rich: messages must not be re-wrapped mid key path."""
    sys.stderr.write(error.render() + "\n")
    raise typer.Exit(EXIT_INVALID_INPUT)


def print_findings(resolved) -> None:
    """A resolved stack's capacity/SLO warnings (fatal under validate --strict), then its notes: stderr."""
    for warning in resolved.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    for note in resolved.notes:
        sys.stderr.write(f"note: {note}\n")


def fail_usage(option: str, message: str) -> NoReturn:
    """Invalid input on one option: `error: --opt: message` on stderr, exit 2."""
    sys.stderr.write(f"error: {option}: {message}\n")
    raise typer.Exit(EXIT_INVALID_INPUT)


def stack_ref(stack: str, stacks_dir: Path, option: str = "--stack") -> tuple[str, Path]:
    """Resolve `--stack` (or `option`, e.g. --from) given as a name or a Pulumi.<name>.yaml path to
    (name, stacks dir); exit 2 naming the option otherwise."""
    from components.spec import Problem
    from components.spec.stack_file import resolve_stack_ref

    try:
        return resolve_stack_ref(stack, stacks_dir)
    except SpecError as error:
        if option != "--stack":
            error = SpecError([Problem(option if p.path == "--stack" else p.path, p.message) for p in error.problems],
                              error.source)
        fail_spec(error)


def stack_args(given: str, stacks_dir: Path) -> list[str]:
    """The `--stack` arguments to repeat in a next-step command: as the user gave them."""
    args = ["--stack", given]
    if not any(sep in given for sep in ("/", "\\")) and not given.endswith((".yaml", ".yml")) \
            and Path(stacks_dir).resolve() != Path(DEFAULT_STACKS_DIR).resolve():
        args += ["--stacks-dir", str(stacks_dir)]
    return args


# --- output ---------------------------------------------------------------------------------


def emit_json(document: Any) -> None:
    """The one JSON document of a --json run, on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def console(as_json: bool = False) -> Console:
    """A console for this call (reads COLUMNS now, writes to the current sys.stdout). Under --json,
    stdout holds only the document: the console writes the command's messages to stderr."""
    return Console(highlight=False, stderr=as_json)


def table(title: Optional[str], *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table whose cells fold onto more lines at any width: no ellipsis, no cut header."""
    t = Table(title=title)
    for column in columns:
        t.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return t


def print_command(command: list[str] | str, label: str = "next") -> None:
    """A command to copy: whole, on its own line, plain stdout (never re-wrapped mid-token)."""
    text = command if isinstance(command, str) else shlex.join(command)
    sys.stdout.write(f"{label}: {text}\n" if label else f"{text}\n")
    sys.stdout.flush()


# --- help -----------------------------------------------------------------------------------


def add_exit_code_epilog(app: typer.Typer) -> None:
    """Every command's help ends with the exit-code table (a command's own epilog is kept first)."""
    def walk(t: typer.Typer):
        for info in t.registered_commands:
            if EXIT_CODES_EPILOG not in (info.epilog or ""):
                info.epilog = f"{info.epilog}\n\n{EXIT_CODES_EPILOG}" if info.epilog else EXIT_CODES_EPILOG
        for group in t.registered_groups:
            if group.typer_instance is not None:
                walk(group.typer_instance)

    walk(app)
