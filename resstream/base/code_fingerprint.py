"""Code fingerprints: which library code a job runs, so that an edit of it reruns that job.

Snakemake reruns a job when its ``script:`` file changes, but not when a module the script imports
does.  Each rule therefore gets a ``code`` param: a sha256 over the source of every module of the
``resstream`` package its script imports, directly or through other modules, plus the package
data files those modules name (``paper_claims.yaml``, the schema).  The modules are found by
reading the import statements (:mod:`ast`), every one of them (also those inside functions), so
nothing is listed by hand: editing ``metrics.py`` changes the fingerprints of the jobs whose code
reaches ``metrics.py`` and of no other.  Any edit of such a file counts, a comment included.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "resstream"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module ``resstream.a.b`` (``a/b.py`` or ``a/b/__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path, package_dir: Path) -> str:
    """The package a module's relative imports start from."""
    name = _module_name(path, package_dir)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_names(path: Path, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Every ``resstream`` module name a Python file imports (absolute or relative, at any depth of
    the file, each name of a ``from`` import tried as a submodule too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = path.is_relative_to(package_dir)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not inside:
                    continue
                base = _package_of(path, package_dir).split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def reachable_modules(entry: Path, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The files of every ``resstream`` module the file ``entry`` imports, directly or not, with the
    ``__init__.py`` of each package on the way (importing ``a.b`` runs ``a``'s first)."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        current = todo.pop()
        for name in imported_names(current, package_dir):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                module_path = module_file(".".join(parts[:depth]), package_dir)
                if module_path is not None and module_path not in seen:
                    seen.add(module_path)
                    todo.append(module_path)
    return sorted(seen)


def data_files_named(modules: list[Path], package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Package data files (anything but Python sources and caches) whose file name appears in the
    source of one of ``modules``: the files that code reads."""
    data = [
        p
        for p in package_dir.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    sources = "\n".join(m.read_text() for m in modules)
    return sorted(p for p in data if p.name in sources)


@functools.cache
def code_fingerprint(script: str, package_dir: str = str(PACKAGE_DIR)) -> str:
    """``sha256:<hex>`` over the library code the job script ``script`` runs: the sources of the
    modules it reaches (:func:`reachable_modules`) and the data files they name, each with its path
    inside the package."""
    root = Path(package_dir)
    modules = reachable_modules(Path(script), root)
    digest = hashlib.sha256()
    for path in modules + data_files_named(modules, root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()}"


def fingerprinted_files(script: str, package_dir: str = str(PACKAGE_DIR)) -> list[str]:
    """The files :func:`code_fingerprint` reads for ``script``, relative to the package (for tests
    and for a user asking what an edit reruns)."""
    root = Path(package_dir)
    modules = reachable_modules(Path(script), root)
    return [str(p.relative_to(root)) for p in modules + data_files_named(modules, root)]
