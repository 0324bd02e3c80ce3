"""The registry owns every parameter: declared choices and rules are enforced once, with messages
that name the fix, and ``describe()`` tells the widget everything its editor needs.

Parametrized over the registry itself, so a method or metric added later is covered without
editing this file. Everything here is ``check_params`` / ``describe`` (no model runs) except the
few end-to-end checks at the bottom, on 8 × 8 inputs.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.baselines import BASELINE, resolve_baseline
from saliency_widgets.checks import EDITABLE_TYPES, Check
from saliency_widgets.errors import SaliencyError
from saliency_widgets.registry import METHODS, METRICS, Spec, method

SPECS = [METHODS.get(n) for n in METHODS.names()] + [METRICS.get(n) for n in METRICS.names()]
FIELDS = {"default", "type", "nullable", "choices", "also", "bounds", "editable", "note", "call"}


def _params(want):
    out = []
    for spec in SPECS:
        for name, p in spec.params.items():
            if not p.call and want(p):
                out.append(pytest.param(spec, name, id=f"{spec.name}.{name}"))
    return out


def _typo(choice: str) -> str:
    """A near miss of ``choice``: one letter too many."""
    return choice + "s"


def _bad_values(check: Check) -> list:
    """Values that break ``check``: a wrong type, and values just outside its bounds."""
    bad: list = ["x", True] if check.type != "bool" else ["x", 0.5, 1]
    if check.type == "int":
        bad += [1.5, check.low - 1]
    elif check.type == "float":
        bad += [float("nan"), float("inf")]
        if check.low is not None:
            bad.append(check.low if check.low_open else check.low - 0.5)
        if check.high is not None:
            bad.append(check.high if check.high_open else check.high + 0.5)
    elif check.type == "int_pair":
        bad += [0, (2, 0), (1, 2, 3), 1.5]
    elif check.type == "dict":
        bad = [3, "x", [("steps", 3)]]
    if not check.none:
        bad.append(None)
    return bad


@pytest.mark.parametrize("spec, name", _params(lambda p: p.allowed() is not None))
def test_every_declared_choice_is_accepted(spec: Spec, name: str):
    for choice in spec.params[name].allowed():
        full = spec.check_params({name: choice})
        assert full[name] == choice


@pytest.mark.parametrize("spec, name", _params(lambda p: p.allowed() is not None))
def test_a_wrong_choice_is_refused_with_a_close_match(spec: Spec, name: str):
    allowed = spec.params[name].allowed()
    for choice in (c for c in allowed if isinstance(c, str)):
        with pytest.raises(SaliencyError) as err:
            spec.check_params({name: _typo(choice)})
        msg = str(err.value)
        assert msg.startswith(f"{spec.name}: {name}={_typo(choice)!r} is not supported; use one of")
        assert f"Did you mean {choice!r}?" in msg, msg
        listed = allowed if len(allowed) <= 40 else allowed[:3]
        assert all(repr(c) in msg for c in listed)
    if not spec.params[name].also:  # a closed choice refuses other types too, without a guess
        with pytest.raises(SaliencyError, match="is not supported; use one of") as err:
            spec.check_params({name: 3})
        assert "Did you mean" not in str(err.value)


@pytest.mark.parametrize("spec, name", _params(lambda p: p.check is not None))
def test_declared_rules_refuse_bad_values_in_the_methods_words(spec: Spec, name: str):
    check = spec.params[name].check
    for value in _bad_values(check):
        with pytest.raises(SaliencyError) as err:
            spec.check_params({name: value})
        msg = str(err.value)
        assert msg.startswith(f"{spec.name}: {name} must be {check.words}"), msg
        assert msg.endswith(f"got {value!r}"), msg


@pytest.mark.parametrize("spec, name", _params(lambda p: p.check is not None))
def test_declared_rules_accept_their_bounds_and_the_default(spec: Spec, name: str):
    p = spec.params[name]
    good = [p.default]
    if p.check.low is not None and not p.check.low_open:
        good.append(int(p.check.low) if p.check.type in ("int", "int_pair") else p.check.low)
    if p.check.high is not None and not p.check.high_open:
        good.append(p.check.high)
    if p.check.none:
        good.append(None)
    nested = spec.wraps is not None and name == spec.wraps[1]  # filled with the base's defaults
    for value in good:
        full = spec.check_params({name: value})
        assert nested or full[name] == value


def test_ints_come_back_as_python_ints():
    import numpy as np
    full = METHODS.get("integrated_gradients").check_params({"steps": np.int64(5)})
    assert type(full["steps"]) is int and full["steps"] == 5


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_describe_tells_the_editor_everything(spec: Spec):
    d = spec.describe()
    for key in ("name", "label", "family", "output", "uses_layer", "stochastic",
                "class_agnostic", "params", "choices", "parameters", "wraps", "doc"):
        assert key in d, key
    json.dumps(d)  # plain data: it goes to the widget as JSON
    assert list(d["parameters"]) == list(d["params"])
    for name, p in d["parameters"].items():
        assert set(p) == FIELDS, name
        assert p["default"] == d["params"][name]
        if p["editable"]:
            assert p["type"] in EDITABLE_TYPES, (name, p["type"])
        else:
            assert p["note"].startswith("Python only: ") and len(p["note"]) > 20, name
        if p["type"] in ("int", "float", "int_pair") and p["editable"]:
            assert p["bounds"] is not None, f"{name}: a number needs its bounds"
        if p["choices"] is not None and p["also"] is None:
            assert d["choices"][name] == p["choices"]
        assert p["nullable"] == (p["default"] is None or p["nullable"])
        if not p["call"]:  # the default passes its own rule
            spec.check_params({name: p["default"]})
    assert d["uses_layer"] == ("layer" in d["parameters"])
    if d["uses_layer"]:
        layer = d["parameters"]["layer"]
        assert layer["type"] == "layer" and layer["call"] and layer["default"] is None
        assert "sw.list_layers(model)" in layer["note"]
    # plain data: editing the description leaves the registry alone
    for p in d["parameters"].values():
        p["default"] = "changed"
    assert all(p.describe()["default"] != "changed" for p in spec.params.values())


def test_describe_counts_what_the_registry_declares():
    methods = sw.list_methods()
    assert len(methods) >= 31 and len(sw.list_metrics()) >= 16
    layer = {m["name"] for m in methods if m["uses_layer"]}
    assert {"grad_cam", "score_cam", "layer_cam", "cam", "ablation_cam"} <= layer
    smooth = next(m for m in methods if m["name"] == "smoothgrad")
    assert smooth["wraps"] == {"param": "base", "params": "base_params"}
    bases = smooth["parameters"]["base"]["choices"]
    assert set(bases) == {m["name"] for m in methods} - {"smoothgrad"}
    assert smooth["choices"]["base"] == bases  # the current widget shows it as a menu
    assert not smooth["parameters"]["base_params"]["editable"]
    shap = next(m for m in methods if m["name"] == "deeplift_shap")["parameters"]["references"]
    assert not shap["editable"] and "tensor (R, C, H, W)" in shap["note"]
    ig = next(m for m in methods if m["name"] == "integrated_gradients")["parameters"]
    assert ig["steps"]["bounds"] == {"min": 1, "max": None, "min_inclusive": True,
                                     "max_inclusive": True}
    assert ig["baseline"]["choices"] == list(BASELINE.names) and ig["baseline"]["also"]
    assert ig["rule"]["choices"][0] == "gauss_legendre"


def test_a_declaration_for_no_parameter_fails_at_registration():
    with pytest.raises(ValueError, match="unknown parameters"):
        @method(label="x", family="gradient", output="input", choices={"stepz": ("a",)})
        def _never_registered(ctx, x, *, steps: int = 3):
            return x


def test_a_default_that_breaks_its_rule_fails_at_registration():
    from saliency_widgets.checks import positive_int
    with pytest.raises(ValueError, match="default breaks its own rule"):
        @method(label="x", family="gradient", output="input", validators={"steps": positive_int})
        def _never_registered2(ctx, x, *, steps: int = 0):
            return x


def test_an_uneditable_type_must_be_declared_python_only():
    with pytest.raises(ValueError, match="python_only"):
        @method(label="x", family="gradient", output="input")
        def _never_registered3(ctx, x, *, weights: object = None):
            return x
    assert "_never_registered3" not in METHODS


def test_layer_is_the_calls_argument_not_a_method_parameter():
    with pytest.raises(SaliencyError, match=r"layer= is an argument of the call"):
        METHODS.get("grad_cam").check_params({"layer": "features"})


# --- SmoothGrad's nested parameters -------------------------------------------------------------
def test_smoothgrad_base_is_a_declared_choice():
    spec = METHODS.get("smoothgrad")
    with pytest.raises(SaliencyError, match="Did you mean 'grad_cam'"):
        spec.check_params({"base": "grad_cma"})
    with pytest.raises(SaliencyError, match="base='smoothgrad' is not supported"):
        spec.check_params({"base": "smoothgrad"})
    with pytest.raises(SaliencyError, match="base_params must be a dict of the base method's"):
        spec.check_params({"base_params": 3})
    # the base's own rules apply to its nested parameters
    with pytest.raises(SaliencyError, match="^integrated_gradients: steps must be an int ≥ 1"):
        spec.check_params({"base": "integrated_gradients", "steps": 0})
    full = spec.check_params({"base": "integrated_gradients", "steps": 3, "samples": 2})
    assert full["base_params"] == {"steps": 3, "rule": "gauss_legendre", "baseline": None}


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_smoothgrad_over_a_layer_method_takes_the_layer():
    model, x = _cnn(), torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    sg = sw.attribute(model, x, method="smoothgrad", base="grad_cam", layer="0", samples=2,
                      noise=0.0)
    cam = sw.attribute(model, x, method="grad_cam", layer="0")
    assert sg.layer == cam.layer == "0"
    torch.testing.assert_close(sg.values, cam.values, rtol=0, atol=1e-6)
    with pytest.raises(SaliencyError, match="'gradient' does not use a layer.*grad_cam"):
        sw.attribute(model, x, method="smoothgrad", base="gradient", layer="0", samples=2)


# --- metrics resolve parameters as methods do ---------------------------------------------------
def test_metric_resolved_parameters_go_to_params_and_notes_to_extras():
    model, x = _cnn(), torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    attr = sw.attribute(model, x, method="gradient")
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    r = sw.evaluate(model, x, attr, metric="pointing_game", masks=masks)
    assert r.params["tolerance"] == round(15 / 224 * 8) and "tolerance" not in r.extras
    r = sw.evaluate(model, x, attr, metric="infidelity", samples=3)
    assert r.params["samples"] == 3 and r.params["normalize"] is True
    assert not {"samples", "normalize"} & set(r.extras)
    r = sw.evaluate(model, x, attr, metric="deletion", steps=2)
    assert r.params["baseline"] == 0.0 and "baseline" not in r.extras
    r = sw.evaluate(model, x, attr, metric="road", percentages=(0.5,))
    assert "original" in r.extras and "original" not in r.params
    a = sw.agreement(attr, masks, metrics=["pointing_game"])["pointing_game"]
    assert a.params == sw.evaluate(model, x, attr, metric="pointing_game", masks=masks).params


def test_completeness_learns_from_the_spec_not_the_method_name():
    """A method registered here, declaring ``sums_to_baseline``, gets the completeness gap; the
    same maths without the declaration gets NaN. (x − b) ⊙ ∇f is exact on a bias-free linear
    model: Σ (x − b)·W = f(x) − f(b)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3, bias=False)).double().eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def body(ctx, x, baseline):
        base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator,
                                          owner="test")
        ctx.resolve_param("baseline", resolved)
        _, g = ctx.input_grad(x, original=True)
        return (x - base) * g

    def _test_sums(ctx, x, *, baseline: object = None):
        return body(ctx, x, baseline)

    def _test_no_sums(ctx, x, *, baseline: object = None):
        return body(ctx, x, baseline)

    try:
        method(label="t", family="gradient", output="input", choices={"baseline": BASELINE},
               sums_to_baseline=True)(_test_sums)
        method(label="t", family="gradient", output="input",
               choices={"baseline": BASELINE})(_test_no_sums)
        exact = sw.evaluate(model, x, sw.attribute(model, x, method="_test_sums", baseline=0.5),
                            metric="completeness")
        assert exact.params["baseline"] == 0.5
        assert float(exact.scores.max()) < 1e-12
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            none = sw.evaluate(model, x, sw.attribute(model, x, method="_test_no_sums"),
                               metric="completeness")
        assert bool(torch.isnan(none.scores).all())
        assert any("_test_sums" in str(w.message) for w in caught), "names who has one"
    finally:
        for name in ("_test_sums", "_test_no_sums"):
            METHODS._specs.pop(name, None)
