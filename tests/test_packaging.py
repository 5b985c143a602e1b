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


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_imports_point_down(layer):
    """DESIGN.md: app -> matting -> models; training -> models, matting; nothing imports app."""
    allowed = LAYERS[layer] | {layer}
    for path in (ROOT / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "vidmatte" and len(parts) > 1 and parts[1] in LAYERS:
                    assert parts[1] in allowed, f"{path.relative_to(ROOT)} imports {name}"


def test_no_pickle_loading_outside_weights_only():
    """Security: torch.load only with weights_only=True; nothing calls pickle.load(s)."""
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            src = path.read_text()
            tree = ast.parse(src)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load":
                    base = getattr(node.func, "value", None)
                    if getattr(base, "id", None) == "torch":
                        kws = {k.arg: k.value for k in node.keywords}
                        ok = (
                            isinstance(kws.get("weights_only"), ast.Constant)
                            and kws["weights_only"].value is True
                        )
                        assert ok, (
                            f"{path.relative_to(ROOT)}:{node.lineno} torch.load without weights_only=True"
                        )
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) in (
                    "pickle",
                    "dill",
                    "cloudpickle",
                ):
                    assert node.attr not in ("load", "loads", "Unpickler"), (
                        f"{path.relative_to(ROOT)}:{node.lineno} unpickles"
                    )
