"""The installed distribution: console scripts, namespaces, layering."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]


def test_every_package_folder_is_listed():
    """Sub-packages must be listed in pyproject.toml, or they silently miss the wheel."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            assert name in listed, f"{name} is not listed in pyproject.toml"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_console_scripts_answer(script, flag):
    module, func = SCRIPTS[script].split(":")
    code = f"import sys; from {module} import {func} as m; sys.exit(m([{flag!r}]))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    if flag == "--version":
        assert "vidmatte" in out and any(c.isdigit() for c in out)
    else:
        assert "usage" in out.lower()
    assert "Traceback" not in out


LAYERS = {"models": set(), "matting": {"models"}, "training": {"models", "matting"},
          "app": {"models", "matting"}}  # fmt: skip
#: The sub-packages the tree is organised in (docs/architecture.md, "What is where").
SUBPACKAGES = {
    "models": {"indexnet", "matters", "teachers", "trimapnet", "weights"},
    "matting": {"io", "tracking"},
    "training": {"data", "eval", "labels", "metrics", "release"},
    "app": set(),
}
#: Where first-party code lives (all of it obeys the private-name rule).
CODE = (*LAYERS, "bench", "tests", "assets")


def _modules(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def _module_name(path: Path) -> str:
    """vidmatte.* name of a file under a layer folder (bench/tests: their own names)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["vidmatte", *parts] if parts[0] in (*LAYERS, "assets") else parts)


def test_subpackages_exist_and_nothing_is_flat_that_belongs_in_one():
    """The sub-packages are there, each a package; the layers hold no stray folders."""
    for layer, subs in SUBPACKAGES.items():
        found = {p.parent.name for p in (ROOT / layer).glob("*/__init__.py")}
        assert found == subs, f"{layer}/ sub-packages: {sorted(found)} (expected {sorted(subs)})"
        strays = [d.name for d in (ROOT / layer).iterdir()
                  if d.is_dir() and d.name not in subs and any(d.glob("*.py"))]  # fmt: skip
        assert not strays, f"{layer}/ has Python folders that are not packages: {strays}"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_imports_point_down(layer):
    """docs/architecture.md: app -> matting -> models; training -> models, matting; nothing
    imports app. Function-level (lazy) imports count as much as module-level ones."""
    allowed = LAYERS[layer] | {layer}
    for path, tree in _modules(layer):
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "vidmatte" and len(parts) > 1 and parts[1] in LAYERS:
                    assert parts[1] in allowed, f"{path.relative_to(ROOT)} imports {name}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_another_modules_private_name():
    """`from vidmatte.x import _y`, `import vidmatte._x`, or `module._y` on an imported
    vidmatte module: a private name used elsewhere must be made public (or moved)."""
    import importlib.util

    bad = []
    for path, tree in _modules(*CODE):
        here = _module_name(path)
        modules: dict[str, str] = {}  # local name -> vidmatte module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("vidmatte"):
                        if any(_private(part) for part in a.name.split(".")):
                            bad.append(f"{path.relative_to(ROOT)}:{node.lineno} import {a.name}")
                        modules[a.asname or a.name.split(".")[0]] = a.name
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vidmatte"):
                for a in node.names:
                    target = f"{node.module}.{a.name}"
                    if _private(a.name) and node.module != here:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} from {target}")
                    elif importlib.util.find_spec(node.module) is not None:
                        try:
                            if importlib.util.find_spec(target) is not None:
                                modules[a.asname or a.name] = target
                        except ModuleNotFoundError:
                            pass
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and modules.get(base.id, here) != here:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {base.id}...{node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_torch_load_only_in_the_checkpoint_reader():
    """One path for reading third-party checkpoints: models/weights/checkpoints.py (tests
    read their own files). It passes weights_only=True explicitly; nothing unpickles."""
    reader = ROOT / "models" / "weights" / "checkpoints.py"
    for path, tree in _modules(*LAYERS, "bench"):
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if getattr(func, "attr", None) == "load" and (
                getattr(getattr(func, "value", None), "id", None) == "torch"
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert path == reader, f"{where}: torch.load outside {reader.name}"
                kws = {k.arg: k.value for k in node.keywords}
                ok = (
                    isinstance(kws.get("weights_only"), ast.Constant)
                    and kws["weights_only"].value is True
                )
                assert ok, f"{where} torch.load without weights_only=True"
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) in (
                "pickle",
                "dill",
                "cloudpickle",
            ):
                assert node.attr not in ("load", "loads", "Unpickler"), (
                    f"{path.relative_to(ROOT)}:{node.lineno} unpickles"
                )


def test_design_is_cited_from_the_repository():
    """Our files cite docs/architecture.md (in this repository), not ../shared/DESIGN.md."""
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
    for path, _ in _modules(*CODE):
        text = path.read_text()
        if path.name != "shared.py" and path.name != "test_packaging.py":
            assert "DESIGN.md" not in text, f"{path.relative_to(ROOT)} cites DESIGN.md"
