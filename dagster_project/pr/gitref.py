"""The project as it was at a git ref, unpacked into a temporary folder: the metric YAML,
the dbt models and seeds that declare the sources' columns, and the macros (whose digest
goes into each rollup model). Read with `git archive`; the working tree is never touched."""
from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..paths import ProjectPaths

# what load_project and render_files read; dbt_project/ is not needed for a diff
PROJECT_PARTS = ("metrics", "models", "seeds", "macros")


class GitError(RuntimeError):
    """A git problem the user can fix (not a repository, unknown ref): the message says how."""


def _git(root: Path, *args: str, binary: bool = False):
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed (needed to read the base ref)") from None
    if out.returncode != 0:
        raise _Failed(out.stderr.decode(errors="replace").strip())
    return out.stdout if binary else out.stdout.decode().strip()


class _Failed(Exception):
    pass


@dataclass(frozen=True)
class BaseRef:
    ref: str  # as the user wrote it
    commit: str  # full hash
    short: str
    subject: str


def resolve(root: Path, ref: str) -> BaseRef:
    try:
        _git(root, "rev-parse", "--show-toplevel")
    except _Failed:
        raise GitError(f"{root} is not inside a git repository: `metrics diff` compares the metric YAML "
                       "of a git ref with the working tree") from None
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except _Failed:
        hint = ""
        if ref.startswith("origin/"):
            hint = f" (fetch it first: `git fetch origin {ref.split('/', 1)[1]}`; in CI check out with fetch-depth: 0)"
        raise GitError(f"unknown git ref `{ref}`{hint}") from None
    subject = _git(root, "log", "-1", "--format=%s", commit)
    return BaseRef(ref, commit, commit[:10], subject)


def export_project(root: Path, base: BaseRef, dest: Path) -> ProjectPaths:
    """Unpack the project's parts at `base` into `dest` (the project may sit in a
    subfolder of the repository). Parts missing at that ref stay empty folders, so a base
    from before the project existed reads as a project without metrics."""
    prefix = _git(root, "rev-parse", "--show-prefix")
    top = Path(_git(root, "rev-parse", "--show-toplevel"))  # ls-tree and archive run in a subfolder see only it
    tree = f"{base.commit}:{prefix}"
    try:
        names = set(_git(top, "ls-tree", "--name-only", tree).splitlines())
    except _Failed:
        names = set()  # the project folder did not exist at that ref
    wanted = [p for p in PROJECT_PARTS if p in names]
    dest.mkdir(parents=True, exist_ok=True)
    if wanted:
        data = _git(top, "archive", "--format=tar", tree, *wanted, binary=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            try:
                tar.extractall(dest, filter="data")
            except tarfile.FilterError as err:  # a committed link to /tmp/x.yml or ../../x: not read out there
                member = getattr(err, "tarinfo", None)
                name = member.name if member is not None else "a file"
                link = f" (a link to `{member.linkname}`)" if member is not None and member.linkname else ""
                raise GitError(f"`{prefix}{name}` at {base.short}{link} points outside the project: a committed "
                               "file must be a file or a link within it") from None
    for part in PROJECT_PARTS:
        (dest / part).mkdir(exist_ok=True)
    return ProjectPaths(dest)
