#!/usr/bin/env python
"""The data randomization test (Adebayo et al. 2018) on the demo data, with a control.

Three models of the demo architecture (``ShapesNet``, 61 k parameters):

* ``true``: the bundled ``shapes`` model, trained on the true labels of fresh images by
  ``python -m saliency_widgets.demo.train`` (initial weights from seed 0);
* ``permuted``: the same initial weights, trained on one fixed set of ``--n`` demo images
  (64 px, seed ``--data-seed``) whose labels are randomly permuted (seeded), until its training
  accuracy (eval mode, the whole set) reaches ``--target`` (0.95): it can only memorise them;
* ``twin`` (the control): the demo training recipe again with seed 1 (other initial weights,
  other images, true labels), ``--twin-epochs`` epochs (12 = the bundled recipe).

Every method explains ``--explain`` images of the fixed set on ``true`` (targets: their true
labels) and ``sw.data_randomization`` compares those maps with the same explanations on
``permuted`` and, as the control, on ``twin``. A method that explains what the model learned
from the labels is far less similar to ``permuted`` than to ``twin``. Writes a markdown report
(``--out``) with the machine, its load, the training times and accuracies.

    python scripts/data_randomization.py --out docs/data_randomization.md

The committed report (``docs/data_randomization.md``) took 426 s on one thread of a shared
2-core machine (load 5–7): 83 s to memorise the permuted labels (9 epochs), 305 s to train the
twin, the rest explaining.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings

import torch
import torch.nn.functional as F

import saliency_widgets as sw
from saliency_widgets.demo.models import ShapesNet
from saliency_widgets.demo.train import train as demo_train

METHODS = {"gradient": {}, "input_x_gradient": {}, "guided_backprop": {},
           "integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 16},
           "grad_cam": {}, "guided_grad_cam": {}}
MEASURES = ("spearman_abs", "spearman", "ssim", "hog")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fit(x: torch.Tensor, labels: torch.Tensor, seed: int, args: argparse.Namespace,
        name: str) -> tuple[ShapesNet, float, int, float]:
    """Train until the training accuracy reaches ``args.target``; (model, accuracy, epochs, s)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ShapesNet()
        order = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
        started = time.perf_counter()
        accuracy, epoch = 0.0, 0
        for epoch in range(1, args.max_epochs + 1):
            model.train()
            perm = torch.randperm(len(x), generator=order)
            for i in range(0, len(x), args.batch):
                idx = perm[i:i + args.batch]
                loss = F.cross_entropy(model(x[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                accuracy = float((model(x).argmax(1) == labels).double().mean())
            if epoch % 10 == 0 or accuracy >= args.target:
                log(f"{name}: epoch {epoch}, train accuracy {accuracy:.3f} "
                    f"({time.perf_counter() - started:.0f} s)")
            if accuracy >= args.target:
                break
    return model, accuracy, epoch, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256, help="training images (default 256)")
    p.add_argument("--data-seed", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0,
                   help="the permuted model's initial weights (0: the bundled model's) and the "
                        "label permutation")
    p.add_argument("--twin-epochs", type=int, default=12, help="the control's epochs")
    p.add_argument("--target", type=float, default=0.95, help="train accuracy to reach")
    p.add_argument("--max-epochs", type=int, default=400)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--explain", type=int, default=32, help="images to explain")
    p.add_argument("--held-out", type=int, default=500, help="held-out images to score")
    p.add_argument("--held-out-seed", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="also write the markdown report here")
    p.add_argument("--json", default=None, help="also write every figure here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", sw.SaliencyWarning)
    load_before = os.getloadavg()
    started = time.perf_counter()

    data = sw.demo.sample(args.n, seed=args.data_seed)
    x, labels = data.x, data.labels
    permuted = labels[torch.randperm(args.n, generator=torch.Generator().manual_seed(args.seed))]
    held = sw.demo.sample(args.held_out, seed=args.held_out_seed)
    models = {"true": sw.demo.load_model("shapes")}
    model, acc, epochs, seconds = fit(x, permuted, args.seed, args, "permuted")
    models["permuted"] = model
    if acc < args.target:
        log(f"WARNING: permuted reached only {acc:.3f} < {args.target} in {epochs} epochs")
    t0 = time.perf_counter()
    models["twin"], _ = demo_train("shapes", seed=1, epochs=args.twin_epochs,
                                   threads=args.threads, n_eval=args.held_out, log=log)
    twin_seconds = time.perf_counter() - t0
    train_rows = []
    record: dict = {"training": {}, "similarity": {}}
    for name, model in models.items():
        with torch.no_grad():
            test = float((model(held.x).argmax(1) == held.labels).double().mean())
            fixed = float((model(x).argmax(1) == (permuted if name == "permuted" else labels))
                          .double().mean())
        how = {"true": "bundled (demo recipe, seed 0)",
               "permuted": f"{epochs} epochs on the fixed set, {seconds:.0f} s",
               "twin": f"demo recipe, seed 1, {args.twin_epochs} epochs, {twin_seconds:.0f} s"}
        train_rows.append(f"| {name} | {fixed:.3f} | {test:.3f} | {how[name]} |")
        record["training"][name] = {"fixed_set_accuracy": fixed, "held_out_accuracy": test,
                                    "how": how[name]}

    xe, te = x[:args.explain], labels[:args.explain]
    rows = []
    for method, params in METHODS.items():
        attr = sw.attribute(models["true"], xe, te, method=method,
                            normalization=sw.demo.NORMALIZATION, **params)
        cells = [method]
        for other in ("permuted", "twin"):
            r = sw.data_randomization(models["true"], models[other], xe, attr)
            means = {k: float(r.extras[k].nanmean()) for k in MEASURES}
            cells += [f"{v:.3f}" for v in means.values()]
            record["similarity"].setdefault(method, {})[other] = means
        rows.append("| " + " | ".join(cells) + " |")
        log(f"{method}: done")
    total = time.perf_counter() - started
    load_after = os.getloadavg()

    lines = [
        f"# Data randomization test on the demo data ({datetime.date.today().isoformat()})",
        "",
        f"Written by `scripts/data_randomization.py` (arguments: "
        f"`{' '.join(argv if argv is not None else sys.argv[1:]) or '(defaults)'}`), "
        f"torch {torch.__version__}, {platform.machine()} CPU, {args.threads} threads; load "
        f"average {load_before[0]:.1f} before and {load_after[0]:.1f} after (the machine is "
        f"shared, so times are not final). Total {total:.0f} s.",
        "",
        f"`true`: the bundled `shapes` model. `permuted`: the same initial weights trained with "
        f"AdamW (lr {args.lr}, batch {args.batch}) on {args.n} fixed demo images (64 px, seed "
        f"{args.data_seed}) with permuted labels (they agree with the true ones on "
        f"{float((permuted == labels).double().mean()):.1%} of the images) until its training "
        f"accuracy reached {args.target}. `twin`: the demo training recipe with seed 1. "
        f"Accuracy on the fixed set (against the labels each model was trained on) and on "
        f"{args.held_out} held-out images (seed {args.held_out_seed}; chance is 0.2).",
        "",
        "| model | fixed-set accuracy | held-out accuracy | training |",
        "|---|---:|---:|---|",
        *train_rows,
        "",
        f"Mean similarity, over the first {args.explain} training images, of each method's map "
        f"on `true` (true class as the target) with the same explanation on `permuted` "
        f"(trained on permuted labels) and on `twin` (true labels, other initial weights: the "
        f"control). Lower against `permuted` than against `twin` means the map depends on "
        f"what the labels taught the model (the test is passed).",
        "",
        "| method | " + " | ".join(f"permuted: {k}" for k in MEASURES) + " | "
        + " | ".join(f"twin: {k}" for k in MEASURES) + " |",
        "|---|" + "---:|" * (2 * len(MEASURES)),
        *rows,
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        log(f"wrote {args.out}")
    if args.json:
        record.update(date=datetime.datetime.now().isoformat(timespec="seconds"),
                      arguments=vars(args), torch=torch.__version__,
                      saliency_widgets=sw.__version__, commit=_commit(),
                      machine=f"{os.cpu_count()} × {platform.machine()} CPU",
                      load_average_before=load_before, load_average_after=load_after,
                      total_seconds=total)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1)
        log(f"wrote {args.json}")
    return 0


def _commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes to tracked files)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(sw.__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


if __name__ == "__main__":
    sys.exit(main())
