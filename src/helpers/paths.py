"""Where the book keeps its inputs, caches and results, and how it writes files atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
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


def output_root() -> Path:
    """Where caches and results go: $BOOK_OUTPUT_ROOT (a build under an emulated other machine keeps its own),
    else the book's root."""
    env = os.environ.get("BOOK_OUTPUT_ROOT")
    return Path(env).resolve() if env else project_root()


def cache_dir(*parts: str) -> Path:
    """A directory under `<output root>/cache` (models, downloads, activations), created if missing."""
    path = output_root().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile: str, *parts: str) -> Path:
    """A directory under `<output root>/results/<profile>` (ledger files and figures), created if missing."""
    path = output_root().joinpath("results", profile, *parts)
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


def replace_between_markers(text: str, table: str, markers: tuple[str, str]) -> str:
    """`text` with everything between its two `markers` replaced by `table`; an error if a marker is missing."""
    start, end = markers
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"README.md must hold the markers {start} and {end} once each, in that order")
    return text[:text.index(start) + len(start)] + "\n" + table + text[text.index(end):]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirror_copy(mirror: str | os.PathLike[str], url: str) -> Path:
    """Where a mirror folder keeps its copy of an http(s) URL: `<mirror>/<host>/<path>`."""
    parts = urllib.parse.urlsplit(url)
    return Path(mirror) / parts.netloc / parts.path.lstrip("/")


def mirrored(url: str) -> str:
    """`url`, or the file:// URL of its copy in the folder $BOOK_MIRROR where one exists: a run can ask for the real
    URLs and be served local copies (the colab-smoke profile; a machine with no internet)."""
    mirror = os.environ.get("BOOK_MIRROR")
    if not mirror or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return url
    copy = mirror_copy(mirror, url)
    return copy.resolve().as_uri() if copy.is_file() else url


def download_verified(url: str, target: str | os.PathLike[str], sha256: str | None = None) -> Path:
    """Fetch `url` (http(s) or file://) to `target` once, atomically, and check its SHA-256.

    With no published checksum, the first download's SHA-256 is recorded in `<target>.sha256` and every later use
    must match it; a mismatch raises instead of silently using different data.
    """
    target = Path(target)
    recorded = target.with_name(target.name + ".sha256")
    url = mirrored(url)
    if not target.exists():
        try:
            with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=60) as response:
                with open(tmp, "wb") as handle:
                    shutil.copyfileobj(response, handle)
        except OSError as error:
            raise OSError(f"could not download {url} to {target}: {error}") from error
    actual = file_sha256(target)
    expected = sha256 or (recorded.read_text().strip() if recorded.exists() else None)
    if expected and actual != expected:
        raise ValueError(f"{target}: SHA-256 {actual} does not match the expected {expected} (from {url})")
    if not recorded.exists():
        atomic_write_text(recorded, actual + "\n")
    return target


def read_jsonl(path: str | os.PathLike[str], error: type[Exception] = ValueError) -> list[dict]:
    """Every non-blank line of a JSONL file as a dict, plus its `line` number; a line that is not a JSON object,
    or a file without records, raises `error` naming the file and line (callers check their own fields)."""
    path = Path(path)
    records = []
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as failure:
                raise error(f"{path}:{line_no}: not valid UTF-8 (byte {failure.start} of the line)") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as failure:
                raise error(f"{path}:{line_no}: not valid JSON ({failure.msg})") from None
            if not isinstance(record, dict):
                raise error(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            records.append({**record, "line": line_no})
    if not records:
        raise error(f"{path}: no records")
    return records
