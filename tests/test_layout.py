"""The house plan's one-way imports, read from the source with ``ast`` (nothing is imported).

Dependencies flow ``errors/_types → registry → model/ → methods/ | metrics/ → api → render/ →
widget/``. A wrong-way arrow fails here, naming the file, the line and the rule:

* the engine (everything but ``widget/``, ``demo/`` and the package's public ``__init__``)
  never imports ``widget/`` or ``demo/``;
* only ``model/`` touches ``nn.Module`` internals (``_modules``, ``_parameters``, hook dicts, …)
  or private classes of ``torch.nn.modules`` (``nn.modules.conv._ConvNd``);
* ``widget/`` reaches the engine through ``api`` and ``render/``, never ``model/``;
* ``methods/`` and ``metrics/`` never import each other.

Nothing is whitelisted: code outside ``model/`` that needs internals moves into ``model/``.
The checker itself is tested on a small fake package with one violation of each rule.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "saliency_widgets"

# nn.Module's private state: reading or writing it outside model/ breaks the model-hygiene plan
INTERNALS = frozenset({
    "_modules", "_parameters", "_buffers", "_non_persistent_buffers_set",
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
    "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks", "_is_full_backward_hook",
    "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
    "_global_backward_pre_hooks", "_global_forward_hooks_always_called",
})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.what}"


def _room(parts: tuple[str, ...]) -> str:
    """The room of a module: its subpackage (``model``, ``widget``…) or ``top`` for top-level
    modules; the package's own ``__init__`` is the public surface."""
    if len(parts) == 2 and parts[1] == "__init__":
        return "surface"
    return parts[1] if len(parts) > 2 else "top"


def _imports(tree: ast.AST, module: tuple[str, ...], is_package: bool
             ) -> list[tuple[int, tuple[str, ...]]]:
    """Every imported module of this package as a dotted tuple, with its line."""
    root = module[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, tuple(a.name.split("."))) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module[:-1]
                base = base[:len(base) - (node.level - 1)]
            else:
                base = ()
            target = base + (tuple(node.module.split(".")) if node.module else ())
            out.append((node.lineno, target))
            if len(target) == 1:  # `from .. import model`: the names are the submodules
                out += [(node.lineno, target + (a.name,)) for a in node.names]
    return [(line, t) for line, t in out if t and t[0] == root]


def _private_nn_modules(node: ast.AST) -> str | None:
    """``nn.modules.conv._ConvNd``-style access, or ``from torch.nn.modules… import _X``."""
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        chain = []
        inner: ast.AST = node.value
        while isinstance(inner, ast.Attribute):
            chain.append(inner.attr)
            inner = inner.value
        if "modules" in chain and ((isinstance(inner, ast.Name) and inner.id in ("nn", "torch"))
                                   or "nn" in chain):
            return ast.unparse(node)
    if isinstance(node, ast.ImportFrom) and node.module and \
            node.module.startswith("torch.nn.modules"):
        private = [a.name for a in node.names if a.name.startswith("_")]
        if private:
            return f"from {node.module} import {', '.join(private)}"
    return None


# The engine's insides: the widget asks api.py (and render/, audit/) instead. errors and _types
# (the records the API returns) are part of the API's surface.
_ENGINE_INSIDES = frozenset({"model", "methods", "metrics", "registry", "work", "baselines",
                             "checks", "reduce", "attacks"})


def check(package: Path) -> list[Violation]:
    """Every wrong-way import and internals access under ``package``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent)
        parts = tuple(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = parts[:-1] if is_package else parts
        room = _room(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(rel))

        def add(line: int, rule: str, what: str, rel: Path = rel) -> None:
            found.append(Violation(str(rel), line, rule, what))

        for line, target in _imports(tree, module, is_package):
            to = target[1] if len(target) > 1 else "top"
            dotted = ".".join(target)
            if room not in ("widget", "demo", "surface") and to in ("widget", "demo"):
                add(line, "the engine never imports widget/ or demo/", dotted)
            if room == "widget" and to in _ENGINE_INSIDES:
                add(line, "widget/ reaches the engine through api and render/, not model/",
                    dotted)
            if {room, to} == {"methods", "metrics"}:
                add(line, "methods/ and metrics/ never import each other", dotted)
        if room == "model":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in INTERNALS:
                add(node.lineno, "only model/ touches nn.Module internals", ast.unparse(node))
            elif isinstance(node, ast.Constant) and node.value in INTERNALS:
                add(node.lineno, "only model/ touches nn.Module internals", repr(node.value))
            private = _private_nn_modules(node)
            if private:
                add(getattr(node, "lineno", 0), "only model/ uses torch.nn.modules' private "
                    "classes (use the public nn.Conv2d, …)", private)
    return found


def _fmt(violations: list[Violation]) -> str:
    return "\n".join(map(str, violations))


RULES = ("the engine never imports widget/ or demo/",
         "only model/ touches nn.Module internals",
         "only model/ uses torch.nn.modules' private classes (use the public nn.Conv2d, …)",
         "methods/ and metrics/ never import each other")
WIDGET = "widget/ reaches the engine through api and render/, not model/"


@functools.cache
def _package_violations() -> tuple[Violation, ...]:
    return tuple(check(PACKAGE))  # parsed once for every rule below


def _in_widget(v: Violation) -> bool:
    return v.path.startswith(f"{PACKAGE.name}/widget/")


@pytest.mark.parametrize("rule", RULES)
def test_the_engine_keeps_the_rule(rule):
    wrong = [v for v in _package_violations() if v.rule == rule and not _in_widget(v)]
    assert not wrong, f"{rule}:\n{_fmt(wrong)}"


@pytest.mark.parametrize("rule", [WIDGET, RULES[2], RULES[1]])
def test_the_widget_keeps_the_rule(rule):
    wrong = [v for v in _package_violations() if v.rule == rule and _in_widget(v)]
    assert not wrong, f"{rule}:\n{_fmt(wrong)}"


def test_every_rule_fires_on_a_package_that_breaks_it(tmp_path):
    pkg = tmp_path / "pkg"
    files = {
        "__init__.py": "from .widget import show\nfrom . import demo\n",  # the surface may
        "api.py": "from .widget.widget import Widget\nimport pkg.demo\n",
        "render/__init__.py": "from .. import widget\n",
        "methods/__init__.py": "",
        "methods/ig.py": "from ..metrics import deletion\nfrom ..model.hooks import h\n",
        "metrics/__init__.py": "",
        "metrics/deletion.py": "from pkg.methods.ig import ig\n",
        "model/__init__.py": "",
        "model/hooks.py": "def h(m):\n    return m._forward_hooks, m._modules\n",  # allowed
        "model/copy.py": "from torch.nn.modules.conv import _ConvNd\n",  # allowed here
        "widget/__init__.py": "",
        "widget/widget.py": ("from ..model.copy import unwrap\nfrom .. import api\n"
                             "def f(m):\n    return nn.modules.conv._ConvNd, m._parameters, "
                             "getattr(m, '_buffers')\n"),
        "demo/__init__.py": "",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    got = {(v.path, v.line, v.rule.split(" ")[0], v.what) for v in check(pkg)}
    assert got == {
        ("pkg/api.py", 1, "the", "pkg.widget.widget"),
        ("pkg/api.py", 2, "the", "pkg.demo"),
        ("pkg/render/__init__.py", 1, "the", "pkg.widget"),
        ("pkg/methods/ig.py", 1, "methods/", "pkg.metrics"),
        ("pkg/metrics/deletion.py", 1, "methods/", "pkg.methods.ig"),
        ("pkg/widget/widget.py", 1, "widget/", "pkg.model.copy"),
        ("pkg/widget/widget.py", 4, "only", "nn.modules.conv._ConvNd"),
        ("pkg/widget/widget.py", 4, "only", "m._parameters"),
        ("pkg/widget/widget.py", 4, "only", "'_buffers'"),
    }, _fmt(check(pkg))
