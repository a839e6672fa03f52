"""The book as a graph of chapters: what each chapter reads, a digest of everything it depends on, and which
chapters a build must execute because their digest changed (or their outputs are missing)."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

# The earlier chapters whose caches or ledgers each chapter reads (its "Prerequisites"); a chapter's digest includes
# theirs, so a change upstream re-executes everything downstream of it.
READS: dict[str, tuple[str, ...]] = {
    "01_moral_vectors": (),
    "02_activations": ("01_moral_vectors",),
    "03_categorical": ("01_moral_vectors", "02_activations"),
    "04_gradient": ("03_categorical",),
    "05_structural": ("02_activations",),
    "06_dimensional": ("01_moral_vectors", "02_activations"),
    "07_across_models": ("03_categorical", "04_gradient", "05_structural", "06_dimensional"),
    "08_sae": ("01_moral_vectors", "02_activations"),
    "09_moral_features": ("08_sae",),
    "10_surgery": ("08_sae", "09_moral_features"),
    "11_steering_flames": ("08_sae", "10_surgery"),
    "12_harmful_weights": (),
    "13_superposition_geometry": ("08_sae",),
    "14_report": ("01_moral_vectors", "02_activations", "03_categorical", "04_gradient", "05_structural",
                  "06_dimensional", "07_across_models", "08_sae", "09_moral_features", "10_surgery",
                  "11_steering_flames", "12_harmful_weights", "13_superposition_geometry"),
}
REPORT = "14_report"  # the chapter that renders the whole committed reference, not only its own file
EXERCISES = "exercises"  # the folder of exercise pages: they run on planted data, read no chapter, write no ledger


def is_exercise(page: str) -> bool:
    """Whether a notebook page (`notebooks/exercises/E2_...`) is an exercise page rather than a chapter."""
    return Path(page).parent.name == EXERCISES


def _nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of a module except the bodies of its command-line entry point `main`, which no chapter runs."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if not (isinstance(node, ast.FunctionDef) and node.name == "main"):
            todo.extend(ast.iter_child_nodes(node))
    return out


@functools.lru_cache(maxsize=1024)
def _imported_names(source: str) -> frozenset[str]:
    """The names a Python source imports from `helpers` (anywhere but in `main`); parsed once per distinct text,
    since every page's closure reads the same helper files."""
    names = set()
    for node in _nodes(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "helpers":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("helpers."))
    return frozenset(names)


def imported_helpers(source: str, package: Path) -> set[str]:
    """The `helpers` modules (or subpackages) a Python source imports directly (anywhere but in `main`), as names
    under `package`."""
    return {n for n in _imported_names(source) if (package / f"{n}.py").is_file() or (package / n).is_dir()}


def _files_of(name: str, package: Path) -> list[Path]:
    """The files of one helpers module, or every file of a subpackage (code and the data it ships)."""
    if (package / f"{name}.py").is_file():
        return [package / f"{name}.py"]
    return sorted(p for p in (package / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def helper_closure(source: str, package: Path) -> list[Path]:
    """Every helpers file a source text depends on: the modules it imports, and theirs, transitively."""
    seen: set[str] = set()
    todo = imported_helpers(source, package) | {"__init__"}
    while todo:
        name = todo.pop()
        seen.add(name)
        for path in _files_of(name, package):
            if path.suffix == ".py":
                todo |= imported_helpers(path.read_text(), package) - seen
    return sorted({path for name in seen for path in _files_of(name, package)})


def notebook_code(path: Path) -> str:
    """The code cells of a paired .ipynb, joined (what the chapter imports is read from here)."""
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def chapter_inputs(root: Path, chapter: str, profile: str, rendered: bool = True) -> list[Path]:
    """The files one chapter's execution depends on: its notebook (first), the helpers it imports (transitively),
    the profile (of which `digests` takes the keys the chapter can read: `profile_read`), the pinned environment
    and (`rendered`) the committed reference it shows (its own file; all for the report), which changes what a page
    shows but never a ledger."""
    stem = Path(chapter).name
    notebook = root / f"{chapter}.ipynb"
    reference = root / "reference" / profile
    shown = sorted(reference.glob("*.json")) if stem == REPORT else [reference / f"{stem}.json"]
    return [notebook, *helper_closure(notebook_code(notebook), root / "src" / "helpers"),
            root / "params" / f"{profile}.yaml", root / "pyproject.toml",
            *[p for p in shown if rendered and p.is_file()]]


ATTRIBUTE = re.compile(r"\.([A-Za-z_]\w*)")  # `x.<name>`: how code reads a profile key (`P.quota_scale`)


@functools.lru_cache(maxsize=16)
def _parsed_yaml(text: str) -> object:
    """A profile's YAML, parsed once per distinct text (every page's digest reads it; callers only read it)."""
    return yaml.safe_load(text)


def profile_read(params: Path, code: Sequence[str]) -> bytes:
    """What a chapter can read of its profile: the values of every key of `params` that its code (the notebook's and
    that of every helper it imports) names as an attribute, `P.<key>` (never by name at run time: a test forbids
    it), as canonical JSON; so editing another key, or a comment, re-executes nothing."""
    raw = _parsed_yaml(params.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):  # not a profile: load_profile names the error; every chapter depends on it all
        return params.read_bytes()
    named = {name for text in code for name in ATTRIBUTE.findall(text)}
    return json.dumps({k: v for k, v in raw.items() if k in named}, sort_keys=True, default=str).encode()


def shown_reference(path: Path) -> bytes:
    """What a page shows of a committed reference file: everything but the source digests, which only decide what
    a later `make reference` keeps (so re-stamping them re-executes nothing)."""
    entry = json.loads(path.read_text())
    entry.pop("sources", None)
    for other in entry.get("other_machines", []):
        other.pop("sources", None)
    return json.dumps(entry, sort_keys=True).encode()


def digests(root: Path, chapters: list[str], profile: str, environment: Mapping[str, object],
            rendered: bool = True) -> dict[str, str]:
    """Per chapter (in build order), a digest of its input files (with the reference it shows if `rendered`, and of
    the profile only the keys it can read), the build environment and the digests of the chapters it reads; a
    chapter missing from READS raises."""
    env = json.dumps(environment, sort_keys=True, default=str)
    out: dict[str, str] = {}
    for chapter in chapters:
        stem = Path(chapter).name
        if stem not in READS and not is_exercise(chapter):
            raise KeyError(f"{chapter}: not in helpers.graph.READS; declare which chapters it reads")
        h = hashlib.sha256(env.encode())
        inputs = chapter_inputs(root, chapter, profile, rendered)
        code = [notebook_code(inputs[0]), *(p.read_text() for p in inputs if p.suffix == ".py")]
        for path in inputs:
            if path == root / "params" / f"{profile}.yaml":
                content = profile_read(path, code)
            elif path.parent.parent == root / "reference":
                content = shown_reference(path)
            else:
                content = path.read_bytes()
            h.update(str(path.relative_to(root)).encode() + b"\0" + content)
        for upstream in READS.get(stem, ()):
            done = next((d for c, d in out.items() if Path(c).name == upstream), None)
            h.update((upstream + (done or "not in this build")).encode())
        out[chapter] = h.hexdigest()
    return out


def source_digests(root: Path, profile: str) -> dict[str, str]:
    """Per chapter stem, a digest of what decides its ledger on a given machine: its sources and those of the
    chapters it reads, for `profile`, without the machine or the committed reference (two builds with the same
    source digest computed the same thing, on whatever machine they ran)."""
    from helpers.book import chapters  # the build order; book imports this module

    found = digests(root, chapters(root), profile, {"profile": profile}, rendered=False)
    return {Path(chapter).name: digest for chapter, digest in found.items()}


def stamp_file(stage: Path, chapter: str) -> Path:
    """Where the digest of a chapter's last successful execution is kept, beside its executed copy."""
    return stage / f"{chapter}.digest"


def sources_file(results: Path, chapter: str) -> Path:
    """Where a build records the source digest (`source_digests`) its ledger of `chapter` (a stem) was computed
    from: beside the ledger, in the profile's `results/<profile>/`."""
    return results / f"{chapter}.sources"


def of_sources(results: Path, chapter: str, digest: str | None) -> bool:
    """Whether `results` (a build's `results/<profile>/`) holds a ledger of `chapter` that its build recorded as
    computed from source digest `digest` (a ledger without a record, or with another, is not)."""
    record = sources_file(results, chapter)
    return (results / f"{chapter}.json").is_file() and record.is_file() and record.read_text() == digest


def upstream(chapter: str) -> list[str]:
    """Every chapter `chapter` reads, directly or through the chapters it reads (stems, build order)."""
    found: set[str] = set()
    todo = list(READS.get(chapter, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += READS.get(name, ())
    return [name for name in READS if name in found]


def downstream(chapter: str) -> list[str]:
    """Every chapter that reads `chapter`, directly or through other chapters (stems, build order)."""
    return [name for name in READS if chapter in upstream(name)]


def next_page(pending: Sequence[str], running: Sequence[str]) -> str | None:
    """Of the `pending` pages (build order), the one to start next beside those `running`: a page none of whose
    upstream chapters is still pending or running, the one most chapters read through (so the longest chain of the
    graph starts first; ties: build order); None when every pending page waits on another."""
    busy = {Path(page).name for page in (*pending, *running)}
    ready = [page for page in pending if not busy & set(upstream(Path(page).name))]
    return max(ready, key=lambda page: len(downstream(Path(page).name)), default=None)


def to_execute(stage: Path, results: Path, wanted: Mapping[str, str],
               sources: Mapping[str, str] | None = None) -> list[str]:
    """The pages whose last successful execution had another digest, or whose executed copy or ledger (chapters
    only; `results`: the profile's ledger folder) is missing, or (given the chapters' `sources`) whose ledger is
    not recorded as of its current sources (`of_sources`: a build of other chapters only may leave one whose build
    digest did not change although a chapter it reads did), in build order."""
    sources = sources or {}
    return [chapter for chapter, digest in wanted.items()
            if not (stamp_file(stage, chapter).is_file() and stamp_file(stage, chapter).read_text() == digest
                    and (stage / f"{chapter}.ipynb").is_file()
                    and (is_exercise(chapter) or (results / f"{Path(chapter).name}.json").is_file()))
            or (Path(chapter).name in sources
                and not of_sources(results, Path(chapter).name, sources[Path(chapter).name]))]
