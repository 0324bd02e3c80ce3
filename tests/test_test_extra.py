"""Every package a test skips without is one that the ``[test]`` extra installs.

``pytest.importorskip`` skips quietly when its package is missing, so a package left out of the
extra turns its tests into ones that always skip under ``make test`` (as the SLIC tests did
before scikit-image was added). This reads the extra from ``pyproject.toml`` and every
``importorskip`` call from the test sources, and maps modules to the distributions that
provide them.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    """Normalised distribution names of the core dependencies and the ``[test]`` extra."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    names = set()
    for block in (r"^dependencies = \[(.*?)^\]", r"^test = \[(.*?)^\]"):
        found = re.search(block, text, re.S | re.M)
        assert found, f"pyproject.toml: no {block!r} list"
        for req in re.findall(r'^\s*"([^"]+)"', found.group(1), re.M):
            names.add(_norm(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]))
    return names


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _skipped_modules() -> dict[str, list[str]]:
    """Top-level module → the test files that call ``pytest.importorskip`` on it."""
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                top = str(node.args[0].value).split(".")[0]
                out.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return out


def test_every_importorskip_package_is_in_the_test_extra():
    declared = _declared()
    assert {"captum", "grad-cam", "scikit-image", "quantus"} <= declared
    providers = md.packages_distributions()
    skipped = _skipped_modules()
    assert {"skimage", "sklearn", "captum"} <= set(skipped), "the scan found too little"
    missing = []
    for module, files in skipped.items():
        dists = {_norm(d) for d in providers.get(module, [])}
        if not dists:
            missing.append(f"{module} (not installed; skipped in {', '.join(sorted(set(files)))})")
        elif not dists & declared:
            missing.append(f"{module} (from {', '.join(sorted(dists))}, not in the [test] extra)")
    assert not missing, "tests skip without packages that `make test` does not install: " + \
        "; ".join(missing)
