"""``sw.attack``: change a map while the prediction stays put, beside random noise of the same size.

Untargeted attacks follow Ghorbani, Abid, Zou 2019 ("Interpretation of neural networks is
fragile", arXiv:1710.10547), targeted ones Dombrowski et al. 2019 ("Explanations can be
manipulated and geometry is to blame", arXiv:1906.07983); the steps and keep rules are in
``pgd.py``, the choice of the network that gives the direction in ``surrogate.py``, the shift
measures in ``shift.py``. Every map that is reported (original, attacked, noise) is computed by
the public ``sw.attribute`` on the explained network; the step directions come from the same
method code run differentiably (``api.attribute_graph``). The user's model is only ever run
through structural copies.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Sequence, cast

import torch
from torch import nn

from ..api import attribute, attribute_graph, check_input
from ..baselines import parse_normalization
from ..errors import SaliencyError
from ..model.copy import explainable
from ..model.explainee import OutputSelector, select_output
from ..model.smooth import softplus_copy
from ..registry import METHODS
from ..work import Progress, Work, callback, progress_bar
from . import pgd
from .result import AttackResult
from .shift import centre_of_mass, magnitude, map_shift, mass_in, top_k_mask
from .surrogate import check_derivative, direction_model

SWEEP = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def _positive(name: str, value: Any, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or (upper is not None and value > upper) or math.isinf(value):
        bound = f" and at most {upper}" if upper is not None else ""
        raise SaliencyError(f"attack: {name} must be a number > 0{bound}, got {value!r}")
    return float(value)


def _target_map(spec: Any, h0: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` target in [0, 1]: the given map, or a box beside the original map's mass."""
    B, H, W = h0.shape
    if spec is None:
        return _beside(h0)
    if not isinstance(spec, torch.Tensor):
        raise SaliencyError(f"attack: target_map must be a (H, W) or (B, H, W) tensor, got "
                            f"{type(spec).__name__}")
    t = spec.detach().to(h0.device, torch.float64)
    if t.shape == (H, W):
        t = t.expand(B, H, W)
    if t.shape != (B, H, W):
        raise SaliencyError(f"attack: target_map has shape {tuple(spec.shape)}; it must be "
                            f"({H}, {W}) or ({B}, {H}, {W})")
    peak = t.flatten(1).amax(1)
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or not bool((peak > 0).all()):
        raise SaliencyError("attack: target_map must be finite, non-negative and non-zero for "
                            "every example (e.g. a bool box)")
    return t / peak.view(-1, 1, 1)


def _centre_or_middle(h0: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` centres of mass; the image's middle for an all-zero map."""
    H, W = h0.shape[1:]
    com = centre_of_mass(h0)
    middle = torch.tensor([(H - 1) / 2, (W - 1) / 2], dtype=com.dtype, device=com.device)
    return torch.where(torch.isnan(com), middle, com)


def _beside(h0: torch.Tensor) -> torch.Tensor:
    """Square boxes of a quarter of the side, one side away from each map's centre of mass (up,
    down, left or right, inside the image), the one holding the least of the map's mass.

    Beside rather than far: a network's gradient can be exactly zero far from the object (the
    demo model's global max pool passes gradient through one position's receptive field), where
    no budget can move the map.
    """
    B, H, W = h0.shape
    s = max(1, round(min(H, W) / 4))
    com = _centre_or_middle(h0)
    out = torch.zeros(B, H, W, dtype=torch.float64, device=h0.device)
    for b in range(B):
        cy, cx = float(com[b, 0]), float(com[b, 1])
        best, where = float("inf"), (0, 0)
        for dy, dx in ((-s, 0), (s, 0), (0, -s), (0, s)):
            r = min(max(0, round(cy + dy - (s - 1) / 2)), H - s)
            c = min(max(0, round(cx + dx - (s - 1) / 2)), W - s)
            mass = float(h0[b, r:r + s, c:c + s].sum())
            if mass < best:
                best, where = mass, (r, c)
        out[b, where[0]:where[0] + s, where[1]:where[1] + s] = 1
    return out


@progress_bar
def attack(model: nn.Module, x: torch.Tensor, *, method: str, target: Any = None,
           kind: str = "untargeted", epsilon: float = 8 / 255, steps: int = 20,
           step_size: float | None = None, target_map: torch.Tensor | None = None,
           keep: str = "label", normalization: Any = None, seed: int = 0,
           progress: Progress = None,
           cancel: threading.Event | None = None, params: dict[str, Any] | None = None,
           contrast: Any = None, layer: Any = None, beta: float | None = 10.0,
           defence: float | None = None, tolerance: float = 0.1, top_k: float = 0.05,
           batch_size: int | None = None, output: OutputSelector = None) -> AttackResult:
    """Return an :class:`AttackResult`: a projected gradient attack on ``method``'s maps.

    Parameters
    ----------
    model, x, target, contrast, layer, normalization, seed, output
        As in :func:`sw.attribute`. ``x`` must be images in [0, 1] after undoing
        ``normalization`` (without one, ``x`` itself).
    method : str
        The method whose maps are attacked; ``params`` holds its parameters (e.g.
        ``{"steps": 16}`` for integrated gradients).
    kind : ``"untargeted"`` or ``"targeted"``
        Move the map's mass out of its top-k region and its centre away (Ghorbani et al.), or
        make it match ``target_map`` (Dombrowski et al.).
    epsilon : float
        L∞ budget in pixel units (8/255 by default); pixels stay in [0, 1].
    steps, step_size
        PGD iterations and the initial step (default 2.5 ε / steps); a rejected step halves it.
    target_map : ``(H, W)`` or ``(B, H, W)`` tensor, or None
        The targeted attack's goal; None: a square of a quarter of the side, one side away from
        the original map's centre of mass, where the map has the least mass.
    keep : ``"label"`` or ``"logits"``
        Reject steps that change the predicted label (and, for ``"logits"``, that change the
        logits by more than ``tolerance``, relative L2).
    beta : float or None
        Softplus β of the surrogate that gives the direction for gradient-only methods
        (``derivative="surrogate"`` in ``list_methods()``); None attacks them directly (no
        direction on ReLU nets). Methods with ``derivative="none: …"`` are refused.
    defence : float or None
        Dombrowski et al.'s defence: explain (and attack) through the softplus(``defence``)
        copy of the model. Labels are still the model's own.
    top_k : float
        Fraction of pixels in the top-k region (objective and shift measure).
    batch_size : int or None
        Examples attacked together; None: a quarter of the engine's backward chunk.
    progress, cancel
        Progress over the whole call (a callable(done, total), or True for a ``tqdm.auto``
        bar); cancelling raises :class:`sw.Cancelled`.
    """
    started = time.perf_counter()
    if kind not in pgd.KINDS:
        raise SaliencyError(f"attack: kind={kind!r}; use one of {pgd.KINDS}")
    if keep not in pgd.KEEPS:
        raise SaliencyError(f"attack: keep={keep!r}; use one of {pgd.KEEPS}")
    epsilon = _positive("epsilon", epsilon, upper=1.0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SaliencyError(f"attack: steps must be an int ≥ 1, got {steps!r}")
    step_size = 2.5 * epsilon / steps if step_size is None else _positive("step_size", step_size)
    tolerance = _positive("tolerance", tolerance)
    top_k = _positive("top_k", top_k, upper=1.0)
    if params is not None and not isinstance(params, dict):
        raise SaliencyError(f"attack: params must be a dict of the method's parameters, got "
                            f"{type(params).__name__}")
    params = dict(params or {})
    spec = METHODS.get(method)
    check_derivative(spec.name, params)
    check_input(model, x)
    B, C = x.shape[:2]
    norm, _ = parse_normalization(normalization, C, x.device, x.dtype)
    space = pgd.PixelSpace(*norm) if norm is not None else pgd.PixelSpace()
    p0 = pgd.pixels_of(x, space, norm is not None)
    explained = model if defence is None else softplus_copy(model, _positive("defence", defence))
    if defence is None:
        director, surrogate = direction_model(model, spec.name, params, beta)
    else:
        director, surrogate = explained, False
    stochastic = spec.stochastic or params.get("baseline") == "uniform"
    reuse = director is explained and not stochastic  # the attacked map is the judged map
    total = B * (steps + 3)
    common = dict(method=spec.name, layer=layer, normalization=normalization, output=output,
                  **params)

    report_to = callback(progress)

    def phase(offset: int) -> Callable[[int, int], None] | None:
        if report_to is None:
            return None
        return lambda done, count: report_to(offset + (B * done) // max(1, count), total)

    with explainable(model) as net:
        def logits(p: torch.Tensor) -> torch.Tensor:
            return select_output(net(space.to_model(p)), output)

        with torch.no_grad():
            logits0 = logits(p0)
        labels = logits0.argmax(1)  # the model's own prediction, also under a defence
        original = attribute(explained, x, labels.tolist() if target is None else target,
                             contrast=contrast, seed=seed, batch_size=batch_size,
                             progress=phase(0), cancel=cancel, **common)
        targets = list(original.target)
        contrasts = None if original.contrast is None else list(original.contrast)
        h0 = magnitude(original.values)
        if kind == "untargeted":
            top = top_k_mask(h0, top_k)
            com0 = _centre_or_middle(h0)
            goal = None
        else:
            goal = _target_map(target_map, h0)

        best = torch.empty_like(p0)
        diag: dict[str, list[torch.Tensor]] = {"loss_curve": [], "accepted_steps": [],
                                               "best_loss": []}
        work = Work(x.device, batch_size, None, cancel)

        def chunk(i: int, j: int) -> None:
            rows_t, rows_c = targets[i:j], None if contrasts is None else contrasts[i:j]

            def graph_map(leaf: torch.Tensor, it: int) -> torch.Tensor:
                # Stochastic methods draw fresh noise for each direction, so the attack cannot
                # fit one draw; the judged maps use the call's seed.
                return attribute_graph(director, space.to_model(leaf), rows_t,
                                       contrast=rows_c, cancel=cancel,
                                       seed=seed + 1 + it if stochastic else seed, **common)

            def true_map(p: torch.Tensor) -> torch.Tensor:
                return attribute(explained, space.to_model(p), rows_t, contrast=rows_c,
                                 seed=seed, cancel=cancel, **common).values

            if kind == "untargeted":
                loss = lambda h: pgd.untargeted_loss(h, top[i:j], com0[i:j])  # noqa: E731
            else:
                aim = cast(torch.Tensor, goal)  # set for the targeted kind
                loss = lambda h: pgd.targeted_loss(h, aim[i:j])  # noqa: E731

            def report(done: int) -> None:
                if report_to is not None:
                    report_to(B + i * steps + (j - i) * done, total)

            s = pgd.Steps(graph_map=graph_map, true_map=None if reuse else true_map,
                          logits=logits, loss=loss, labels=labels[i:j], logits0=logits0[i:j],
                          keep=keep, tolerance=tolerance, check_cancel=work.check_cancel,
                          report=report)
            found, info = pgd.run(p0[i:j], epsilon, steps, step_size, s)
            best[i:j] = found
            for k, v in info.items():
                diag[k].append(v)

        work.run(B, chunk, item_numel=4 * x[0].numel(), kind="backward", report=False)
        g = torch.Generator(device=x.device).manual_seed(seed)
        sign = (2 * torch.rand(p0.shape, generator=g, device=x.device, dtype=p0.dtype) - 1).sign()
        p_noise = (p0 + epsilon * sign).clamp(0, 1)
        with torch.no_grad():
            z_adv, z_noise = logits(best), logits(p_noise)

    x_adv, x_noise = space.to_model(best).detach(), space.to_model(p_noise)
    attacked = attribute(explained, x_adv, targets, contrast=contrasts, seed=seed,
                         batch_size=batch_size, progress=phase(B * (steps + 1)), cancel=cancel,
                         **common)
    noise = attribute(explained, x_noise, targets, contrast=contrasts, seed=seed,
                      batch_size=batch_size, progress=phase(B * (steps + 2)), cancel=cancel,
                      **common)
    delta, delta_noise = (best - p0).flatten(1), (p_noise - p0).flatten(1)
    target_mass = None
    if goal is not None:
        target_mass = {name: mass_in(a.values, goal)
                       for name, a in (("original", original), ("attacked", attacked),
                                       ("noise", noise))}
    extras = {k: torch.cat(v, dim=1 if k == "loss_curve" else 0) for k, v in diag.items()}
    extras["logit_change"] = pgd.logit_change(z_adv, logits0).detach().double().cpu()
    return AttackResult(
        x=x_adv, noise_x=x_noise, original=original, attacked=attacked, noise=noise,
        kept=(z_adv.argmax(1) == labels).cpu(), noise_kept=(z_noise.argmax(1) == labels).cpu(),
        shift=map_shift(original.values, attacked.values, top_k),
        noise_shift=map_shift(original.values, noise.values, top_k),
        linf=delta.abs().amax(1).double().cpu(), l2=delta.norm(dim=1).double().cpu(),
        noise_linf=delta_noise.abs().amax(1).double().cpu(),
        noise_l2=delta_noise.norm(dim=1).double().cpu(),
        target_map=None if goal is None else goal.cpu(), target_mass=target_mass,
        params={"method": spec.name, "method_params": dict(original.params), "kind": kind,
                "epsilon": epsilon, "steps": steps, "step_size": step_size, "keep": keep,
                "tolerance": tolerance, "top_k": top_k, "beta": beta, "surrogate": surrogate,
                "defence": defence, "seed": seed, "target": tuple(targets),
                "contrast": None if contrasts is None else tuple(contrasts),
                "labels": tuple(labels.tolist())},
        extras=extras, seconds=time.perf_counter() - started)


@progress_bar
def attack_sweep(model: nn.Module, x: torch.Tensor, *, epsilons: Sequence[float] = SWEEP,
                 progress: Progress = None,
                 cancel: threading.Event | None = None, **kwargs: Any) -> list[AttackResult]:
    """Return one :func:`attack` per budget in ``epsilons`` (default 1, 2, 4, 8 / 255), with the
    same settings otherwise; ``progress`` counts the whole sweep."""
    if isinstance(epsilons, (int, float)) or not len(epsilons):
        raise SaliencyError(f"attack_sweep: epsilons must be a non-empty sequence of budgets, "
                            f"got {epsilons!r}")
    out = []
    n = len(epsilons)
    report_to = callback(progress)
    for k, eps in enumerate(epsilons):
        sub = None if report_to is None else (
            lambda done, total, k=k: report_to(k * total + done, n * total))
        out.append(attack(model, x, epsilon=eps, progress=sub, cancel=cancel, **kwargs))
    return out
