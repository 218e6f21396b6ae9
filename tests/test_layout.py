"""The package's shape (issue 9): modules of at most 400 lines, no import circle, experiment
packages built from public names only. Static (AST) checks: nothing is imported or compiled."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "gradflow"
MAX_LINES = 400


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return mods


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import run when `name` is imported (module level, not
    under `if TYPE_CHECKING`), relative imports resolved."""
    path, is_package = MODULES[name]
    package = name.split(".") if is_package else name.split(".")[:-1]
    found = []

    def visit(body):
        for node in body:
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                found.append((target, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                found.extend((a.name, []) for a in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def _edges(name: str) -> set[str]:
    out = set()
    for target, names in _imports(name):
        out.update(m for m in [target] + [f"{target}.{n}" for n in names] if m in MODULES)
    # A package importing its own submodules (to re-export them) is not a circle.
    return {m for m in out if not m.startswith(name + ".")}


def import_circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: _edges(m) for m in MODULES}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return circles


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(SRC)): n
        for path, _ in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_import_circle():
    assert import_circles() == []


def test_the_circle_check_finds_a_circle(monkeypatch):
    # The check itself can fail: let the validation helpers import the data module (which
    # imports them), a circle like the one data -> models -> data that once existed.
    original = _edges
    assert "gradflow._validation" in original("gradflow.data")

    def with_circle(name):
        return original(name) | ({"gradflow.data"} if name == "gradflow._validation" else set())

    monkeypatch.setitem(globals(), "_edges", with_circle)
    assert any("gradflow.data" in c for c in import_circles())


def _private(module: str, names: list[str]) -> list[str]:
    parts = module.split(".")
    bad = [module] if any(p.startswith("_") for p in parts) else []
    return bad + [f"{module}.{n}" for n in names if n.startswith("_")]


EXPERIMENT_PACKAGES = sorted(
    m
    for m, (_, is_package) in MODULES.items()
    if is_package and m.count(".") == 2 and m.startswith("gradflow.experiments.")
)


@pytest.mark.parametrize("package", EXPERIMENT_PACKAGES)
def test_experiment_packages_import_only_public_names(package):
    bad = []
    for module in (m for m in MODULES if m == package or m.startswith(package + ".")):
        for target, names in _imports(module):
            if target == package or target.startswith(package + "."):
                continue  # the experiment's own files
            if target.startswith("gradflow"):
                bad += [f"{module}: {b}" for b in _private(target, names)]
    assert bad == []


def _private_owner(name: str) -> str | None:
    """The package that owns the first private part of a dotted name ('gradflow.runs' for
    'gradflow.runs._files.read_json'), or None if no part is private."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def private_imports_across_packages() -> list[str]:
    """Imports of a private name of a package by a module outside that package. The top-level
    package's private modules (`gradflow._validation`, `_errors`, `_files`, ...) are the
    library's shared internals, open to all of gradflow, as in equinox and diffrax."""
    bad = []
    for module, (_, is_package) in MODULES.items():
        home = module if is_package else module.rsplit(".", 1)[0]
        for target, names in _imports(module):
            for name in [target, *(f"{target}.{n}" for n in names)]:
                owner = _private_owner(name)
                if owner in (None, "gradflow") or home == owner or home.startswith(owner + "."):
                    continue
                bad.append(f"{module}: {name}")
    return sorted(set(bad))


def test_no_private_name_is_imported_across_packages(monkeypatch):
    assert private_imports_across_packages() == []
    # the check can fail: the sweeps reaching into the runner's private module
    original = _imports

    def planted(name):
        extra = [("gradflow.runs._runner", ["plan"])] if name == "gradflow.sweeps._api" else []
        return original(name) + extra

    monkeypatch.setitem(globals(), "_imports", planted)
    assert private_imports_across_packages() == [
        "gradflow.sweeps._api: gradflow.runs._runner",
        "gradflow.sweeps._api: gradflow.runs._runner.plan",
    ]


def _cited_documents(text: str) -> set[str]:
    """The Markdown files a text names (e.g. 'docs/resnets.md', 'MODELS.md')."""
    import re

    return set(re.findall(r"[\w./-]*\w\.md\b", text))


def test_the_code_cites_only_documents_in_the_repository():
    repo = SRC.parent
    missing = {
        f"{path.relative_to(repo)}: {doc}"
        for path in SRC.rglob("*.py")
        for doc in _cited_documents(path.read_text())
        if not (repo / doc).is_file()
    }
    assert not missing, sorted(missing)
    assert _cited_documents("see MODELS.md §2 and docs/resnets.md.") == {
        "MODELS.md",
        "docs/resnets.md",
    }
