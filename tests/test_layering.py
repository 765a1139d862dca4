"""The architecture's arrows, checked on the real import graph.

Dynamic checks import a module in a fresh interpreter and look at sys.modules;
the static check reads every module's imports (including lazy ones inside
functions) with ast.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "photocap"


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", ["photocap", "photocap.settings", "photocap.cli", "photocap.index.store",
                                    "photocap.metadata.writer", "photocap.metadata.reader",
                                    "photocap.library", "photocap.library.scan", "photocap.library.photofile",
                                    "photocap.library.workers", "photocap.library.pipeline", "photocap.library.captioning",
                                    "photocap.library.sync", "photocap.library.edit", "photocap.library.watch",
                                    "photocap.index.vectors", "photocap.library.meaning", "photocap.library.search",
                                    "photocap.library.cluster", "photocap.cli.index_cmd", "photocap.captioner",
                                    "photocap.captioner.onnx_backend", "photocap.captioner.graphs",
                                    "photocap.decoding.captions", "photocap.decoding.modelfile",
                                    "photocap.imaging.preprocess"])
def test_light_modules_do_not_load_torch_or_qt(module):
    loaded = loaded_after_import(module)
    assert "torch" not in loaded
    assert not any(m.startswith("PySide6") for m in loaded)
    assert "ray" not in loaded  # the cluster extra: loaded only when --ray asks for it


def test_only_the_cluster_module_imports_ray():
    """Ray (photocap[cluster]) is imported in one place, library/cluster.py, and only inside functions."""
    importers = sorted(_module_name(p) for p in PACKAGE.rglob("*.py")
                       if any(n == "ray" or n.startswith("ray.") for n in _imports(p)))
    assert importers == ["photocap.library.cluster"]
    tree = ast.parse((PACKAGE / "library" / "cluster.py").read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any(isinstance(n, ast.Import) and any(a.name.split(".")[0] == "ray" for a in n.names) for n in top)
    assert not any(isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "ray" for n in top)


@pytest.mark.parametrize("module", ["photocap.cli", "photocap.index.store", "photocap.library.search"])
def test_search_modules_load_numpy_and_onnxruntime_only_when_searching_by_meaning(module):
    loaded = loaded_after_import(module)
    assert "numpy" not in loaded and "onnxruntime" not in loaded


def test_model_package_imports_only_the_torch_free_model_parts():
    """model/ is the network in torch; what a model file means without torch (its config, words and
    search: decoding/; its images and concepts: imaging/) is shared with the torch-free path."""
    loaded = loaded_after_import("photocap.model.checkpoint")
    ours = {m for m in loaded if m.startswith("photocap.")}
    assert ours <= {m for m in ours if m.startswith(("photocap.model", "photocap.decoding", "photocap.imaging"))}, ours


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__")


RULES = [
    # (modules the rule applies to, forbidden import prefixes)
    ("photocap.decoding", ("torch", "torchvision", "onnxruntime", "PIL", "photocap.model", "photocap.captioner",
                           "photocap.training", "photocap.index", "photocap.metadata", "photocap.library",
                           "photocap.errors", "photocap.records", "photocap.settings", "PySide6")),
    # The torch-free captioner: torch only in torch_backend.py (and graphs.write_graphs, which exports).
    ("photocap.captioner.onnx_backend", ("torch", "torchvision", "photocap.model", "photocap.captioner.torch_backend")),
    ("photocap.captioner.base", ("torch", "torchvision", "photocap.model", "photocap.captioner.torch_backend")),
    ("photocap.imaging", ("torch", "torchvision", "onnxruntime", "photocap.model", "photocap.decoding",
                          "photocap.captioner", "photocap.training", "photocap.index", "photocap.metadata",
                          "photocap.library", "PySide6")),
    ("photocap.model", ("photocap.errors", "photocap.records", "photocap.settings", "photocap.index",
                        "photocap.metadata", "photocap.library", "photocap.captioner", "photocap.training",
                        "photocap.cli", "photocap.gui", "click", "sqlite3", "sqlite_utils", "PySide6")),
    ("photocap.index", ("torch", "torchvision", "photocap.model", "photocap.captioner", "photocap.metadata",
                        "photocap.library", "PySide6")),
    ("photocap.metadata", ("torch", "torchvision", "photocap.model", "photocap.captioner", "photocap.index",
                           "photocap.library", "PySide6")),
    ("photocap.library", ("torch", "torchvision", "PySide6", "click", "photocap.training")),
    ("photocap.training", ("photocap.index", "photocap.metadata", "photocap.library", "photocap.cli",
                           "photocap.gui", "PySide6")),
    ("photocap.", ("photocap.cli",)),  # nothing imports the CLI ...
]


def test_static_import_rules():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for prefix, forbidden in RULES:
            if not (module == prefix or module.startswith(prefix)):
                continue
            if prefix == "photocap." and module.startswith("photocap.cli"):
                continue  # ... except the CLI itself
            for name in _imports(path):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    problems.append(f"{module} imports {name}")
        if not module.startswith(("photocap.gui", "photocap.cli")):
            problems.extend(f"{module} imports {n}" for n in _imports(path) if n.startswith("photocap.gui"))
    assert not problems, "\n".join(sorted(problems))


def _guarded_imports(tree: ast.AST) -> list[str]:
    """Modules imported inside ``try: ... except ImportError`` (or ModuleNotFoundError)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        names = set()
        for handler in node.handlers:
            for n in ast.walk(handler.type) if handler.type is not None else ():
                if isinstance(n, ast.Name):
                    names.add(n.id)
        if not names & {"ImportError", "ModuleNotFoundError"}:
            continue
        for stmt in node.body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Import):
                    found += [a.name for a in n.names]
                elif isinstance(n, ast.ImportFrom) and n.module:
                    found.append(n.module)
    return found


def test_photocap_never_imports_itself_optionally():
    """photocap's own modules are always there: no try/except ImportError around them."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        problems += [f"{_module_name(path)}: {m}" for m in _guarded_imports(tree) if m.startswith("photocap")]
    assert not problems, problems


def test_tests_never_skip_when_photocap_fails_to_import():
    """A test of photocap's code must fail, not skip, when photocap's module cannot be imported."""
    problems = []
    for path in (PACKAGE.parent / "tests").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "importorskip" and node.args
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("photocap")):
                problems.append(f"{path.name}:{node.lineno}")
        problems += [f"{path.name}: {m}" for m in _guarded_imports(tree) if m.startswith("photocap")]
    assert not problems, problems


def test_the_default_model_captions_without_torchvision():
    # The CPU bundle (packaging/photocap-gui.spec) leaves torchvision out: the bundled
    # EfficientNet-Lite encoder must not need it (only the optional torchvision backbones do).
    code = ("import sys, json; from PIL import Image; from photocap.captioner import Captioner; "
            "c = Captioner(device='cpu', backend='torch'); "
            "d = c.describe_images([Image.new('RGB', (64, 48), (200, 120, 40))])[0]; "
            "print(json.dumps([d.caption, sorted(m for m in sys.modules if m.startswith('torchvision'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    caption, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert caption and loaded == []


def test_no_import_cycles_among_photocap_modules():
    """No photocap module imports itself through others (lazy imports inside functions count too:
    a cycle hidden in a function is still two modules that each need the other)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def targets(path: Path) -> set[str]:
        found = set()
        for name in _imports(path):
            # "from photocap.x import y" may name module photocap.x.y or a name in photocap.x.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("photocap"):
                found.add(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        return found

    # A package's __init__ is imported with each of its modules: an edge to it is not a dependency
    # on its children, so packages are not followed into (photocap's __init__ files import lazily).
    graph = {m: {t for t in targets(p) if t != m and not (modules[t].name == "__init__.py"
                                                            and m.startswith(t + "."))}
             for m, p in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
