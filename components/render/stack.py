"""`tierscale render`: the stack's resource graph and every artifact it deploys, on disk.

Layout of `build/<stack>/`:
  resources.json   every registered resource (URN, type, name, parent, dependencies, inputs;
                   secrets masked) and the stack outputs
  plan.json        the values the planner chose for each model
  compose/ ansible/ kubernetes/   the files each tier deploys
  .tierscale-render   the marker: tool, version, stack and the list of files this render wrote

The output directory is never deleted wholesale. A re-render removes only the files the
previous render listed in its marker, then writes the new ones. A directory is refused (a
SpecError on `--out`, exit 2) when it holds anything tierscale did not write: a non-empty
directory without the marker, or a file the marker does not list. The one exception: files
at paths this render writes itself (what `tierscale inventory` or `pulumi up` write under
`build/<stack>/ansible/`) are replaced, marker or not.

No write follows a link inside the output directory (docs/render.md): every file goes to a
fresh temporary file in its directory (O_CREAT|O_EXCL|O_NOFOLLOW) and is renamed over its
path, all through directory descriptors opened with O_NOFOLLOW; a symlink at a path render
writes, or a symlinked directory above one, is refused (exit 2 naming it); a hard link there
is replaced by the rename, never written through.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from components import paths, program
from components.render.mock_runtime import SECRET_MASK, Registered, run_with_mocks
from components.spec import Problem, ResolvedStack, SpecError
from components.spec.stack_file import read_stack

PROJECT = "tierscale"
MARKER = ".tierscale-render"


@dataclass
class RenderResult:
    stack_name: str
    out_dir: Path
    stack: ResolvedStack
    resources: list[Registered]
    outputs: dict
    files: list[Path] = field(default_factory=list)

    def counts_by_type(self) -> Counter:
        return Counter(r.type for r in self.resources)


def kubernetes_manifests(resources: list[Registered]) -> list[dict]:
    """The manifests a stack applies, rebuilt from the registered kubernetes resources."""
    docs = []
    for r in resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm.sh") or r.type.startswith("pulumi:providers"):
            continue
        if "apiVersion" in r.inputs and "kind" in r.inputs:
            doc = {"apiVersion": r.inputs["apiVersion"], "kind": r.inputs["kind"]}
            doc.update({k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")})
            # A Secret's values are masked as a whole; the manifest keeps the map shape with
            # no values, so it stays valid and never carries a secret.
            for key in ("data", "stringData"):
                if doc["kind"] == "Secret" and doc.get(key) == SECRET_MASK:
                    doc[key] = {}
            docs.append(doc)
    return docs


# Apply order for the written files: what others reference first. Registration order under
# Pulumi is concurrent, so files are sorted for stable, reviewable output.
KIND_ORDER = ["Namespace", "StorageClass", "Secret", "ConfigMap", "NetworkPolicy", "PersistentVolumeClaim",
              "Deployment", "LeaderWorkerSet", "Service", "PodDisruptionBudget", "Ingress", "HTTPRoute", "ScaledObject",
              "ServiceMonitor", "PrometheusRule", "Application"]


def _apply_order(doc: dict) -> tuple:
    kind = doc["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = doc.get("metadata", {})
    return rank, meta.get("namespace", ""), meta.get("name", "")


def _manifest_filename(index: int, doc: dict) -> str:
    meta = doc.get("metadata", {})
    parts = [f"{index:03d}", doc["kind"].lower(), meta.get("namespace", ""), meta.get("name", "")]
    return "-".join(p for p in parts if p) + ".yaml"


def render_stack(name: str, out_dir: Optional[Path] = None, *, stacks_dir: Path = paths.STACKS_DIR,
                 extra_config: Optional[dict[str, str]] = None, extra_secret_keys: set[str] = frozenset()) -> RenderResult:
    """Render one stack. `extra_config` (full keys) overrides the stack file, as `pulumi config
    set` would; keys in `extra_secret_keys` are secrets. Raises SpecError on invalid config."""
    stack_config = read_stack(name, stacks_dir)
    config = dict(stack_config.values)
    config.update(extra_config or {})
    secret_keys = set(stack_config.secret_keys) | set(extra_secret_keys)
    result, monitor = run_with_mocks(PROJECT, name, config, secret_keys,
                                     lambda: program.run(name, require_secrets=False))
    out = Path(out_dir) if out_dir else paths.REPO_ROOT / "build" / name
    files: dict[str, str] = {}
    files["resources.json"] = json.dumps({
        "stack": name,
        "resources": [r.to_json() for r in monitor.registered],
        "outputs": monitor.stack_outputs,
    }, indent=2, sort_keys=False) + "\n"
    files["plan.json"] = json.dumps({
        m.name: {"derived": m.derived, "plan": m.plan.to_json()} for m in result.stack.models
    }, indent=2) + "\n"
    for rel, content in sorted(getattr(result.component, "artifacts", {}).items()):
        files[rel] = content
    # Per cluster: a component with several clusters (the large tier) names each object's folder
    # (build/<stack>/<region>/kubernetes/); every other tier writes kubernetes/.
    folder = getattr(result.component, "manifest_dir", lambda r: "kubernetes")
    by_folder: dict[str, list[Registered]] = {}
    for r in monitor.registered:
        by_folder.setdefault(folder(r), []).append(r)
    for directory, registered in by_folder.items():
        for i, doc in enumerate(sorted(kubernetes_manifests(registered), key=_apply_order)):
            files[f"{directory}/{_manifest_filename(i, doc)}"] = yaml.safe_dump(doc, sort_keys=False)
    written = write_render(out, name, files)
    return RenderResult(name, out, result.stack, monitor.registered, monitor.stack_outputs, written)


def _tool_version() -> str:
    try:
        from importlib.metadata import version
        return version("tierscale")
    except Exception:  # running from a checkout that was never installed
        return "unknown"


def _refuse(out: Path, why: str) -> SpecError:
    return SpecError([Problem("--out", f"{out}: {why}")], "render output directory")


def _existing_entries(out: Path) -> tuple[set[str], set[str]]:
    """(files and symlinks, directories) under `out`, relative, never following symlinks."""
    files: set[str] = set()
    dirs: set[str] = set()
    for top, dirnames, filenames in os.walk(out, followlinks=False):
        rel_top = Path(top).relative_to(out)
        for d in list(dirnames):
            if (Path(top) / d).is_symlink():  # a symlinked directory is an entry, not a place we write into
                files.add((rel_top / d).as_posix())
                dirnames.remove(d)
            else:
                dirs.add((rel_top / d).as_posix())
        files.update((rel_top / f).as_posix() for f in filenames)
    return files, dirs


def _read_marker(out: Path) -> Optional[dict]:
    marker = out / MARKER
    if not marker.exists() and not marker.is_symlink():
        return None
    try:
        if marker.is_symlink() or not marker.is_file():
            raise ValueError("not a regular file")
        data = json.loads(marker.read_text())
        if not (isinstance(data, dict) and data.get("tool") == "tierscale" and isinstance(data.get("files"), list)
                and all(isinstance(f, str) for f in data["files"])):
            raise ValueError("not a tierscale render marker")
    except (OSError, ValueError) as error:
        raise _refuse(out, f"{MARKER} is unreadable ({error}); remove the directory yourself or pick another --out")
    return data


def _safe_rel(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and rel != MARKER


# A render's own temporary files: created next to their destination, renamed over it.
TEMP_PREFIX = ".tierscale-tmp-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _link_problem(out: Path, rel: str) -> Optional[str]:
    """Why tierscale must not write the file `rel` under `out`, or None. Never follows a link:
    a symlink at the path or at any directory above it (inside `out`) is refused; a directory
    where a file goes too. A hard link is not refused: the file is replaced by a rename, so the
    other name keeps its content."""
    parts = Path(rel).parts
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        try:
            st = os.lstat(out / sub)
        except FileNotFoundError:
            return None  # created by this render, as a directory or file of its own
        if stat.S_ISLNK(st.st_mode):
            kind = "a symlink" if depth == len(parts) else "a symlinked directory"
            return f"{sub} is {kind} (render never writes through a link)"
        if depth < len(parts) and not stat.S_ISDIR(st.st_mode):
            return f"{sub} is not a directory, but tierscale writes {rel} inside it"
        if depth == len(parts) and not stat.S_ISREG(st.st_mode):
            return f"{sub} is a directory or special file where tierscale writes a file"
    return None


class _Tree:
    """`out`, opened once: every file operation goes through directory file descriptors opened
    with O_NOFOLLOW, so no write, rename or unlink follows a symlink inside `out`, even one
    planted after the checks (that write fails with ELOOP and render stops, naming the path)."""

    def __init__(self, out: Path):
        self.out = out
        self.root = os.open(out, _DIR_FLAGS)
        self._dirs: dict[tuple[str, ...], int] = {(): self.root}

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def _fail(self, rel: str, error: OSError) -> SpecError:
        return _refuse(self.out, f"{rel}: {error.strerror or error} (a link or non-directory appeared while "
                                 f"rendering; render never writes through a link)")

    def dir(self, parts: tuple[str, ...], create: bool) -> Optional[int]:
        """The fd of the directory `parts` under `out` (created when `create`), or None."""
        if parts in self._dirs:
            return self._dirs[parts]
        parent = self.dir(parts[:-1], create)
        if parent is None:
            return None
        name = parts[-1]
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=parent)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if create:
                raise
            return None
        except OSError as error:  # ELOOP (a symlink), ENOTDIR
            raise self._fail("/".join(parts), error)
        self._dirs[parts] = fd
        return fd

    def write(self, rel: str, content: str) -> None:
        """Write a fresh temporary file next to `rel` (O_EXCL|O_NOFOLLOW) and rename it over
        `rel`: a hard link at `rel` is replaced, never written through."""
        parts = Path(rel).parts
        parent = self.dir(parts[:-1], create=True)
        data = content.encode()
        while True:
            tmp = TEMP_PREFIX + secrets.token_hex(8)
            try:
                fd = os.open(tmp, _NEW_FILE_FLAGS, 0o666, dir_fd=parent)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            st = os.lstat(parts[-1], dir_fd=parent) if _exists(parts[-1], parent) else None
            if st is not None and (stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise _refuse(self.out, f"{rel} became a symlink or directory while rendering; nothing was written there")
            os.rename(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=parent)
            except OSError:
                pass
            raise

    def remove(self, rel: str) -> None:
        """Unlink the file `rel` (never what a link points to), then the directories above it
        that it left empty, up to but not including `out`."""
        parts = Path(rel).parts
        parent = self.dir(parts[:-1], create=False)
        if parent is None:
            return
        try:
            if not stat.S_ISDIR(os.lstat(parts[-1], dir_fd=parent).st_mode):
                os.unlink(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            pass
        for depth in range(len(parts) - 1, 0, -1):
            above = self.dir(parts[:depth - 1], create=False)
            fd = self._dirs.pop(parts[:depth], None)
            if fd is not None:
                os.close(fd)
            try:
                os.rmdir(parts[depth - 1], dir_fd=above)
            except OSError:
                break  # not empty (or gone): stop climbing


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def _marker_text(stack: str, files: list[str]) -> str:
    return json.dumps({"tool": "tierscale", "version": _tool_version(), "stack": stack,
                       "files": sorted(files)}, indent=2) + "\n"


def write_render(out: Path, stack: str, files: dict[str, str]) -> list[Path]:
    """Write `files` (relative path -> content) into `out`, replacing only what tierscale wrote.

    Refuses with a SpecError on `--out`, before anything is written or removed, when `out`
    holds anything else, or a symlink at a path it writes or above it. See the module
    docstring for the rules."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise _refuse(out, "exists and is not a directory")
    previous: set[str] = set()
    if out.exists():
        marker = _read_marker(out)
        if marker is not None:
            previous = {f for f in marker["files"] if _safe_rel(f)}
        # Never write through a link: a symlink (or a directory) where a file goes, or a
        # symlinked directory above it, is refused before anything changes.
        for rel in sorted(set(files) | {MARKER}):
            problem = _link_problem(out, rel)
            if problem:
                raise _refuse(out, f"{problem}; nothing was changed")
        present, _dirs = _existing_entries(out)
        # A render's leftovers (killed mid-write): its temporary files, the old marker temp name.
        present = {p for p in present if not Path(p).name.startswith(TEMP_PREFIX)}
        present -= {MARKER, MARKER + ".tmp"} if marker is not None else set()
        foreign = sorted(present - previous - set(files))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            if marker is None:
                why = (f"is not empty and has no {MARKER} marker (not a tierscale render, or one made before "
                       f"renders carried the marker): it holds {shown}. Nothing was changed; choose an empty or "
                       f"new --out directory, or move what you need out of it and delete it")
            else:
                why = (f"holds files the last render did not write: {shown}. tierscale never deletes them; "
                       f"nothing was changed. Move them out of the render directory and run again")
            raise _refuse(out, why)
    out.mkdir(parents=True, exist_ok=True)
    tree = _Tree(out)
    try:
        for top, dirnames, filenames in os.walk(out, followlinks=False):
            for name in filenames:
                if name.startswith(TEMP_PREFIX) or name == MARKER + ".tmp":
                    tree.remove((Path(top).relative_to(out) / name).as_posix())
        # Crash-safe: until the new marker is final, it lists both renders' files.
        tree.write(MARKER, _marker_text(stack, sorted(previous | set(files))))
        for rel in sorted(previous - set(files)):
            tree.remove(rel)
        written: list[Path] = []
        for rel, content in files.items():
            tree.write(rel, content)
            written.append(out / rel)
        tree.write(MARKER, _marker_text(stack, list(files)))
    finally:
        tree.close()
    return written
