"""Where the book keeps its inputs, caches and results, and how it writes files atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def project_root() -> Path:
    """The book's root: $BOOK_ROOT, else the nearest parent of the cwd holding `_toc.yml`, else the cwd."""
    env = os.environ.get("BOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file():
            return candidate
    return here


def cache_dir(*parts: str) -> Path:
    """A directory under `<root>/cache` (models, downloads, activations), created if missing."""
    path = project_root().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile: str, *parts: str) -> Path:
    """A directory under `<root>/results/<profile>` (ledger files and figures), created if missing."""
    path = project_root().joinpath("results", profile, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `target` in one step, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `target` so that readers see either the old file or the whole new one."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
