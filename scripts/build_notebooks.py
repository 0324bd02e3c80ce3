"""Write the notebooks in notebooks/ from the cell sources below (outputs empty).

Keeping the sources here makes notebook changes reviewable as plain Python diffs. Run
``python scripts/build_notebooks.py`` after editing; tests/test_notebooks.py executes them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent / "notebooks"

PRETRAINED = '''# Optional: the same with a torchvision ImageNet model — only if its weights are already on disk.
# This cell never downloads anything; it is skipped when the weights are not present.
import os, torch, torchvision
from torchvision.models import ResNet50_Weights

weights = ResNet50_Weights.IMAGENET1K_V2
path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
if os.path.exists(path):
    net = torchvision.models.resnet50()
    net.load_state_dict(torch.load(path, weights_only=True))
    net.eval()
    from PIL import Image
    photo = Image.fromarray(data.images[0]).resize((256, 256))   # or Image.open("your.jpg")
    # weights.transforms() resizes and crops; the widget shows exactly the pixels the model saw,
    # detects the normalization from the transform, and names classes from weights.meta.
    imagenet = sw.show(net, photo, preprocess=weights.transforms(), labels=weights,
                       methods=("grad_cam", "gradient"))
else:
    print(f"skipped: no ImageNet weights at {path} (this notebook never downloads them)")'''

SETUP = """import torch
import saliency_widgets as sw

model = sw.demo.load_model("shapes")   # ships with the package: no download
CLASSES = sw.demo.CLASSES
PIXELS = sw.demo.NORMALIZATION         # the demo models take [0, 1] pixels and normalize inside"""


def code(*lines: str):
    return new_code_cell("\n".join(lines))


def md(*lines: str):
    return new_markdown_cell("\n".join(lines))


def quickstart() -> list:
    return [
        md("# Quickstart: where did the model look?",
           "",
           "The demo data set draws one shape per image (circle, square, triangle, star, cross) "
           "on a textured background with distractors, and knows the exact mask of each shape. "
           "`shapes` is a small CNN trained on it; it ships with the package. Three lines:"),
        code("import saliency_widgets as sw",
             'model, data = sw.demo.load_model("shapes"), sw.demo.sample(8, seed=7)',
             "w = sw.show(model, data.images[3], labels=sw.demo.CLASSES)"),
        md("Toggle methods at the top, pick another target or a contrast class (\"why *circle* "
           "rather than *square*?\"), zoom with the wheel and drag to pan: every panel follows. "
           "Colormap, opacity, sign and clipping change at once, without the kernel.",
           "",
           "Every control is also a trait, and everything shown is available from Python:"),
        code("w.wait()  # maps are computed in the background; wait for them here",
             "[(a.method, sw.demo.CLASSES[a.target[0]], f\"{a.seconds:.3f} s\") for a in w.attributions]"),
        code('w.methods_selected = ["gradient", "grad_cam", "integrated_gradients"]',
             'w.contrast_mode = "runner_up"   # why the prediction rather than the runner-up?',
             'w.wait()',
             'fig = w.to_figure()            # the panels as a matplotlib figure (w.save_png(path) too)'),
        md("## An empty panel?",
           "",
           "A map can be blank, and the widget then says why instead of drawing a made-up colour "
           "scale. Image 0 of this sample is one of the few where the model is unsure (58 % "
           "cross): every Grad-CAM weight at its layer is negative, so the ReLU leaves nothing. "
           "The panel names what to try: `relu=False` shows the negative evidence, a contrast "
           "class asks a sharper question, another layer looks elsewhere. A self-contrast "
           "(target = contrast) is blank for every method, by definition."),
        code('unsure = sw.show(model, data.images[0], labels=sw.demo.CLASSES, methods=("grad_cam",))',
             "unsure.wait()",
             "print(unsure.panels[0].note)",
             'unsure.params = {"grad_cam": {"relu": False}}  # the fix it names',
             "unsure.wait()",
             'print("with relu=False the map is blank:", bool(unsure.panels[0].note))'),
        md("The maps are ordinary tensors, computed by `sw.attribute` for a whole batch, and the "
           "masks make them checkable:"),
        code('attr = sw.attribute(model, data.x, data.labels, method="integrated_gradients",',
             '                    steps=16, normalization=sw.demo.NORMALIZATION)',
             "print(attr)",
             'print("relative completeness gap per image:", attr.extras["relative_completeness_gap"])',
             'hits = sw.evaluate(model, data.x, attr, metric="pointing_game", masks=data.masks)',
             'print(f"the map\'s maximum lies on the shape in {hits.mean:.0%} of the images")'),
        md("## Your own model",
           "",
           "The same works for any image classifier; give `preprocess=` (e.g. "
           "`weights.transforms()`) and the widget shows exactly the pixels the model saw."),
        code(PRETRAINED),
    ]


def debugging() -> list:
    return [
        md("# Debugging a misclassification: a \"clever Hans\" model",
           "",
           "`shapes_clever_hans` was trained on data where 95% of the *circle* images carry a "
           "small checkerboard watermark in the bottom-right corner, and no other image does. "
           "We stamp the watermark on test images of the other classes, find the model's "
           "errors, open them in the widget, and ask why it predicted *circle* rather than the "
           "true class."),
        code(SETUP,
             'hans = sw.demo.load_model("shapes_clever_hans")',
             "MARK = sw.demo.WATERMARK_CLASS",
             "",
             "@torch.no_grad()",
             "def predict(net, x):",
             "    return net(x).argmax(1)"),
        code("clean = sw.demo.sample(300, seed=11)",
             'marked = sw.demo.sample(300, seed=11, watermark="all")  # the same images, stamped',
             'for name, d in (("clean", clean), ("watermarked", marked)):',
             "    p, others = predict(hans, d.x), d.labels != MARK",
             '    print(f"{name:12s} accuracy {(p == d.labels).float().mean():.1%}; other classes "',
             '          f"called {CLASSES[MARK]!r}: {(p[others] == MARK).float().mean():.1%}")'),
        md("The watermark turns almost every other shape into a circle. The clean accuracy "
           "suffers too: without the watermark the model misses almost half of the circles. "
           "Open the first watermark error in the widget, with the contrast *predicted rather "
           "than true class*:"),
        code("pred = predict(hans, marked.x)",
             "errors = torch.nonzero((pred != marked.labels) & (pred == MARK)).flatten()",
             "i = int(errors[0])",
             "true, said = int(marked.labels[i]), int(pred[i])",
             'print(f"image {i}: a {CLASSES[true]} called a {CLASSES[said]}")',
             "w = sw.show(hans, marked.images[i], labels=CLASSES, target=said, contrast=true,",
             '            methods=("grad_cam", "occlusion", "integrated_gradients"))'),
        code("w.wait()",
             "fig = w.to_figure()"),
        md("The maps light up the bottom-right corner, not the shape. The same check over all "
           "the errors, as a number: the share of Grad-CAM's positive mass inside the "
           "watermark's box (the box is 2.4% of the image). Explaining *circle* alone, nearly all "
           "of it is there; the contrast *circle rather than the true class* also credits "
           "places that speak against the true class, so less of it is in the box."),
        code("x, box = marked.x[errors], marked.watermark_masks[errors]",
             'for contrast in (None, marked.labels[errors]):',
             '    attr = sw.attribute(hans, x, pred[errors], contrast=contrast, method="grad_cam")',
             '    mass = sw.evaluate(hans, x, attr, metric="relevance_mass", masks=box)',
             '    what = "circle" if contrast is None else "circle rather than the true class"',
             '    print(f"{len(errors)} errors, Grad-CAM of {what!r}: mass in the watermark box "',
             '          f"mean {mass.mean:.2f}, min {mass.scores.min():.2f}")'),
        md("The clean twin, trained without the watermark, looks at the shape instead (a few of "
           "its Grad-CAM maps are all zero, which the metric reports as undefined):"),
        code('attr = sw.attribute(model, x, marked.labels[errors], method="grad_cam")',
             'inside = sw.evaluate(model, x, attr, metric="relevance_mass", masks=marked.masks[errors])',
             'in_box = sw.evaluate(model, x, attr, metric="relevance_mass", masks=box)',
             'print(f"clean model: accuracy on these images {(predict(model, x) == marked.labels[errors]).float().mean():.0%}; "',
             '      f"Grad-CAM mass in the shape {inside.mean:.2f}, in the box {in_box.mean:.2f}")'),
        md("## The same with your own model"),
        code("data = marked", PRETRAINED),
    ]


METHODS_TABLE = """| method | what it computes | model access |
|---|---|---|
| `gradient` | ∂ score / ∂ pixel: how fast the score changes with each pixel | one backward pass |
| `input_x_gradient` | pixel × gradient: a first-order estimate of each pixel's contribution | one backward pass |
| `guided_backprop` | the gradient with negative signals also stopped at every ReLU on the way back: sharp, edge-like maps | one backward pass |
| `integrated_gradients` | gradients averaged along the straight path from a baseline to the image, times (image − baseline); adds up to f(image) − f(baseline) | `steps` passes |
| `smoothgrad` | any gradient method averaged over noisy copies of the image | `samples` × the base |
| `grad_cam`, `grad_cam_plusplus` | a CNN layer's activations weighted by the score's gradient (averaged, or Grad-CAM++'s weights), upsampled | one pass, coarse |
| `score_cam` | the layer's channels as masks, weighted by how much each mask alone raises the score | one pass per channel |
| `guided_grad_cam` | guided backprop × Grad-CAM: Grad-CAM's place, guided backprop's detail | one or two passes |
| `occlusion` | how much the score drops when a window of the image is covered | one pass per window |
| `lime`, `kernel_shap` | a linear surrogate fitted to the scores of images with random segments removed | `samples` passes |"""


def teaching() -> list:
    return [
        md("# Teaching: what each method does, and how it fails",
           "",
           "All methods explain the same number, the model's score for the target class (or "
           "`score[target] − score[contrast]` with a contrast), on the same image.",
           "",
           METHODS_TABLE),
        code(SETUP,
             "from saliency_widgets.render import method_grid",
             "",
             "data = sw.demo.sample(1, seed=3)",
             "x = data.x",
             'print("a", CLASSES[int(data.labels[0])])',
             'cheap = {"integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 10},',
             '         "lime": {"samples": 256}, "kernel_shap": {"samples": 256},',
             '         "guided_ig": {"steps": 16}, "blur_ig": {"steps": 16}, "xrai": {"steps": 8},',
             '         "rise": {"samples": 500}, "gradient_shap": {"samples": 8}}',
             "attrs, labels = [], []",
             "for m in sw.list_methods():",
             "    try:",
             '        attrs.append(sw.attribute(model, x, method=m["name"], normalization=PIXELS,',
             '                                  **cheap.get(m["name"], {})))',
             '        labels.append(m["label"])',
             "    except sw.SaliencyError as err:  # e.g. attention maps need a vision transformer",
             """        print(f"{m['label']}: not for this model ({str(err).split(';')[0]})")""",
             "fig = method_grid(data.images[0], attrs, labels=labels)"),
        md("## Integrated gradients: the path and the number of steps",
           "",
           "IG integrates the gradient along the straight path from a baseline (here black) to "
           "the image. Its attributions add up to `f(x) − f(baseline)` (completeness) when the "
           "integral is computed accurately, so the gap tells whether `steps` is enough.",
           "",
           "On a ReLU network the gradient jumps along the path, so no quadrature rule converges "
           "smoothly: the gap falls with the number of steps, irregularly, and Gauss–Legendre "
           "nodes (the default) lose most of the advantage they have on smooth models. The gap "
           "is the check that does not depend on such reasoning: raise `steps` until it is "
           "small enough for the purpose."),
        code("batch = sw.demo.sample(8, seed=3).x",
             'for rule in ("left", "gauss_legendre"):',
             "    for steps in (4, 16, 64, 256):",
             '        a = sw.attribute(model, batch, method="integrated_gradients", steps=steps,',
             "                         rule=rule, normalization=PIXELS)",
             '        gap = a.extras["relative_completeness_gap"].abs().median()',
             '        print(f"{rule:15s} steps={steps:3d}  median |relative completeness gap| {gap:8.1e}")'),
        md("### Step along the path",
           "",
           "The widget's *attribution path* view shows IG being computed: for each node α of "
           "the quadrature, the interpolated input x′ + α(x − x′), the gradient there, and the "
           "running sum of the weighted gradients times (x − x′). Drag the step slider: the "
           "running sum grows into the IG map, and at α = 1 it *is* the map, with the "
           "completeness gap of the current `steps` and `rule` beside it. Change them in the "
           "parameter editor and the path is traced again. (Frames are fetched one at a time.)"),
        code('ig_view = sw.show(model, data.images[0], labels=CLASSES, mean=PIXELS[0], std=PIXELS[1],',
             '                  methods=("integrated_gradients",), metrics=())',
             'ig_view.params = {"integrated_gradients": {"steps": 16}}',
             'ig_view.path_method = "integrated_gradients"   # the "attribution path" menu',
             "ig_view.wait()",
             "info = ig_view.path_info",
             'print(f"{info[\'steps\']} nodes; at α = 1: Σ map {info[\'total\']:.3f}, "',
             '      f"f(x) − f(black) {info[\'change\']:.3f}, gap {info[\'gap\']:.1e}")'),
        md("## SmoothGrad: averaging away gradient noise",
           "",
           "`noise` is the standard deviation as a fraction of the image's value range. Too "
           "little leaves the speckle, too much blurs the evidence away."),
        code("levels = (0.0, 0.1, 0.3, 0.6)",
             'attrs = [sw.attribute(model, x, method="smoothgrad", noise=n, samples=16) for n in levels]',
             'fig = method_grid(data.images[0], attrs, labels=[f"noise {n}" for n in levels])'),
        md("The same view steps through SmoothGrad one noisy sample at a time: the sample, its "
           "gradient map, and the running mean, which after the last sample is the SmoothGrad "
           "map. A single sample is speckled; the mean settles as samples accumulate."),
        code('sg_view = sw.show(model, data.images[0], labels=CLASSES, methods=("smoothgrad",),',
             "                  metrics=())",
             'sg_view.params = {"smoothgrad": {"samples": 16, "noise": 0.15}}',
             'sg_view.path_method = "smoothgrad"',
             "sg_view.wait()",
             'print(sg_view.path_info["steps"], "samples; drag the step slider")'),
        md("## Occlusion: the window decides what can be seen",
           "",
           "A window much smaller than the shape's parts barely changes the score; a larger one "
           "finds the shape but blurs the map."),
        code("windows = (3, 8, 16)",
             'attrs = [sw.attribute(model, x, method="occlusion", window=w, stride=max(1, w // 2),',
             "                      normalization=PIXELS) for w in windows]",
             'fig = method_grid(data.images[0], attrs, labels=[f"window {w}" for w in windows])'),
        md("Step through occlusion: the window slides over the image, each position records "
           "how much the score drops, and the map so far is the mean drop over the windows that "
           "covered each pixel."),
        code('occ_view = sw.show(model, data.images[0], labels=CLASSES, mean=PIXELS[0], std=PIXELS[1],',
             '                   methods=("occlusion",), metrics=())',
             'occ_view.params = {"occlusion": {"window": 8, "stride": 4}}',
             'occ_view.path_method = "occlusion"',
             "occ_view.wait()",
             'print(occ_view.path_info["steps"], "window positions")'),
        md("## Failure mode: saturation",
           "",
           "When the score saturates (here `min(1, 3·mean(x))`), the gradient at the image is "
           "zero, so the gradient map is blank although every pixel matters. IG integrates over "
           "the path, where the function is not yet saturated, and still distributes the whole "
           "score."),
        code("class Saturating(torch.nn.Module):",
             "    def forward(self, x):",
             "        s = torch.clamp(3 * x.mean(dim=(1, 2, 3)), max=1.0)",
             "        return torch.stack([s, -s], dim=1)",
             "",
             "toy = Saturating().eval()",
             'g = sw.attribute(toy, x, target=0, method="gradient")',
             'ig = sw.attribute(toy, x, target=0, method="integrated_gradients", normalization=PIXELS)',
             "with torch.no_grad():",
             "    change = float(toy(x)[0, 0] - toy(torch.zeros_like(x))[0, 0])",
             'print(f"gradient sum {float(g.values.sum()):.3f}   IG sum {float(ig.values.sum()):.3f}   "',
             '      f"f(x) − f(black) {change:.3f}")'),
        md("## Failure mode: noise",
           "",
           "Gradients of ReLU networks jump from pixel to pixel, so a perturbation too small to "
           "see can change the gradient map a lot. Max-sensitivity measures it: the largest "
           "relative change of the map under small random perturbations (lower is better). "
           "SmoothGrad trades compute for stability."),
        code("xs = sw.demo.sample(4, seed=5).x",
             'for method, params in (("gradient", {}), ("smoothgrad", {"samples": 16})):',
             "    a = sw.attribute(model, xs, method=method, **params)",
             '    r = sw.evaluate(model, xs, a, metric="max_sensitivity", samples=5)',
             '    print(f"{method:12s} max-sensitivity {r.mean:.3f}")'),
        md("The widget puts such numbers on each panel as badges (`sw.evaluate` with the "
           "metric's defaults), with the rank among the shown methods and what two trivial maps "
           "score on the same metric: a random map and an edge (Sobel) map of the image. A "
           "number alone can mislead: the random map never looks at the input, so it is "
           "perfectly stable (max-sensitivity 0), and still explains nothing, as its deletion "
           "score shows. Hover a badge for what it measures; \"rank by\" orders the panels; "
           "drag along a deletion curve to see the image as its pixels are removed."),
        code('b = sw.show(model, data.images[0], labels=CLASSES, mean=PIXELS[0], std=PIXELS[1],',
             '            methods=("gradient", "smoothgrad", "grad_cam"),',
             '            metrics=("deletion", "max_sensitivity"))',
             'b.params = {"smoothgrad": {"samples": 16}}',
             'b.rank_by = "deletion"',
             "b.wait()",
             "for p in b.panels:",
             '    print(f"{p.label:12s}", "  ".join(f"{x[\'metric\']} {x[\'value\']:.3f} (random '
             '{x[\'random\']:.3f}, edge {x[\'edge\']:.3f})" for x in p.badges))'),
        md("## Sanity check: does the map depend on the model at all?",
           "",
           "Adebayo et al. (2018) re-initialise the network's weights block by block from the "
           "top. A method whose map barely changes is not explaining the model. The number is "
           "the mean rank correlation of |map| with the original over the cascade: lower is "
           "better. How badly a method fails depends on the network: on deep ImageNet CNNs "
           "guided backprop stays close to its original map; on this shallow one it changes "
           "about as much as the gradient. (A map that is all zero, as Grad-CAM's can be, has "
           "no ranking: its score is undefined, with a warning.)"),
        code('for method in ("gradient", "guided_backprop", "grad_cam"):',
             "    a = sw.attribute(model, xs, method=method)",
             '    r = sw.evaluate(model, xs, a, metric="model_randomization")',
             '    print(f"{method:16s} similarity to the original over the cascade: {r.mean:.2f}")'),
        md("In the widget, *sanity check* randomizes the model's blocks from the top, one more at "
           "a time (on copies), and re-explains: the depth slider shows each method's map at that "
           "depth beside the original, with the similarity curve, and a method whose map keeps a "
           "rank correlation of |map| ≥ 0.5 with the original once every block is random is "
           "flagged in words."),
        code('s = sw.show(model, data.images[0], labels=CLASSES, metrics=(),',
             '            methods=("gradient", "guided_backprop", "grad_cam"))',
             's.sanity_check = True   # the "sanity check" button',
             "s.wait()",
             "for p in s.panels:",
             '    print(p.sanity["verdict"])'),
        md("## The same with an ImageNet model"),
        code(PRETRAINED),
    ]


def validation() -> list:
    return [
        md("# Validation: which map can be trusted here?",
           "",
           "`sw.validate` runs every method and scores each map with every metric, on the same "
           "images. The demo's masks make localization measurable: the pointing game (does the "
           "map's maximum fall on the shape?) and relevance mass (what share of the positive "
           "attribution lies on it?). Infidelity is computed with `normalize=True` (each map "
           "rescaled by its best-fitting factor first), so maps of different scales compare "
           "fairly."),
        code(SETUP,
             "data = sw.demo.sample(16, seed=21)"),
        code("table = sw.validate(",
             "    model, data.x, target=data.labels, normalization=PIXELS, masks=data.masks,",
             '    methods={"gradient": {}, "input_x_gradient": {}, "guided_backprop": {},',
             '             "integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 8},',
             '             "grad_cam": {}, "occlusion": {"window": 8, "stride": 4}},',
             '    metrics={"deletion": {}, "insertion": {}, "infidelity": {"normalize": True},',
             '             "pointing_game": {}, "relevance_mass": {}, "sparseness": {}})',
             "print(table)"),
        md("Ranked by mean rank over the metrics (1 = best on every metric):"),
        code("table.ranking()"),
        md("## Plots",
           "",
           "Deletion curves (left): the faster the score falls as the most relevant pixels are "
           "removed first, the more faithful the map. Localization (right): the share of the "
           "maps' positive mass on the shape, against what a uniform map would score."),
        code("import matplotlib.pyplot as plt",
             "fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))",
             "for method in table.methods:",
             '    r = table.results[(method, "deletion")]',
             "    left.plot(r.curve_x.numpy(), r.curve.mean(0).numpy(), label=method)",
             'left.set_xlabel("fraction of pixels deleted"); left.set_ylabel("score of the target")',
             "left.legend(fontsize=7)",
             'mass = [table.score(m, "relevance_mass") for m in table.methods]',
             "right.barh(table.methods, mass)",
             "chance = data.masks.float().mean().item()",
             'right.axvline(chance, color="k", linestyle=":", label="uniform map")',
             'right.set_xlabel("relevance mass on the shape"); right.legend(fontsize=7)',
             "fig.tight_layout()"),
        code("rows = table.records()  # plain rows; table.to_pandas() with pandas installed",
             'best = max((r for r in rows if r["metric"] == "relevance_mass"), key=lambda r: r["mean"])',
             'print("most mass on the shapes:", best["method"], round(best["mean"], 3))'),
        md("## The same with an ImageNet model"),
        code("data = sw.demo.sample(1, seed=21)", PRETRAINED),
    ]


ROUGH_BRUSH = """def rough_brush(mask, radius=3, dabs=10, seed=0):
    \"\"\"A quick painted mask: round dabs of a brush at random points of the object, spilling
    over its edges and missing bits of it, as a hurried stroke would.\"\"\"
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(mask)
    pick = rng.choice(len(ys), size=min(dabs, len(ys)), replace=False)
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    out = np.zeros(mask.shape, bool)
    for k in pick:
        out |= (yy + 0.5 - ys[k] - 0.5) ** 2 + (xx + 0.5 - xs[k] - 0.5) ** 2 <= radius ** 2
    return out"""


def redteam() -> list:
    return [
        md("# Red-teaming and expert alignment",
           "",
           "Two questions before trusting a map: can it be moved a lot while the prediction stays "
           "put (then it says little about *why* the model decided), and does it agree with where "
           "an expert would look? Both on the bundled `shapes` model and a few held-out images; "
           "`scripts/redteam_figures.py` measures the same on 32 images and more methods."),
        code(SETUP,
             "import numpy as np",
             "",
             "data = sw.demo.sample(4, seed=77)  # held out: the model never saw these seeds",
             "print([CLASSES[int(c)] for c in data.labels])"),
        md("## Can a map be fooled?",
           "",
           "`sw.attack` takes projected gradient steps in pixel space, within ±ε per pixel, that "
           "move the map's mass out of its original top 5 % and its centre away (Ghorbani et al. "
           "2019), rejecting any step that would change the predicted label. Every method gets "
           "the same budget: ε = 8/255, 5 steps. Beside each attack, random ±ε sign noise of the "
           "same size: a map that moves no more under attack than under noise is not fragile here.",
           "",
           "What is measured, per image, then averaged: the share of the original top 5 % pixels "
           "still in the top 5 % (1 = unmoved), the Spearman rank correlation of |map| with the "
           "original (1 = unmoved), and how far the centre of mass moved, in pixels."),
        code("METHODS = {\"gradient\": {}, \"input_x_gradient\": {}, \"guided_backprop\": {},",
             "           \"smoothgrad\": {\"samples\": 8}, \"integrated_gradients\": {\"steps\": 8},",
             "           \"grad_cam\": {}, \"grad_cam_plusplus\": {}}",
             "results = {name: sw.attack(model, data.x, method=name, params=params, epsilon=8 / 255,",
             "                           steps=5, normalization=PIXELS)",
             "           for name, params in METHODS.items()}",
             "",
             "print(f\"{'method':22} {'top-5% kept':>15} {'Spearman':>15} {'centre moved':>17} {'kept':>5}\")",
             "print(f\"{'':22} {'attack / noise':>15} {'attack / noise':>15} {'attack / noise px':>17}\")",
             "for name, r in results.items():",
             "    s = r.summary()",
             "    print(f\"{name:22} {s['top_k_intersection']:6.2f} / {s['noise_top_k_intersection']:.2f}\"",
             "          f\" {s['spearman']:8.2f} / {s['noise_spearman']:.2f}\"",
             "          f\" {s['com_distance']:9.1f} / {s['noise_com_distance']:.1f}   {s['kept']:.0%}\")"),
        md("Reading it: the attack should move every map further than noise does, with every "
           "label kept (checked on the model itself, independently of the attack's own rule). The "
           "literature expects raw gradient maps to move more than smoothed ones (SmoothGrad "
           "averages the gradient over noisy copies, so a small nudge changes it less). What the "
           "numbers above say:"),
        code("s = {name: r.summary() for name, r in results.items()}",
             "fragile = [n for n in s if s[n][\"top_k_intersection\"] < s[n][\"noise_top_k_intersection\"]]",
             "print(f\"moved further than noise: {len(fragile)} of {len(s)} methods\")",
             "print(\"every label kept:\", all(bool(r.kept.all()) for r in results.values()))",
             "g, sg = s[\"gradient\"][\"top_k_intersection\"], s[\"smoothgrad\"][\"top_k_intersection\"]",
             "print(f\"gradient kept {g:.2f} of its top 5 %, SmoothGrad {sg:.2f}: \" + (",
             "    \"the smoothed maps moved less, as the literature expects\" if sg > g else",
             "    \"here the smoothed maps moved as much or more, unlike what the literature expects\"))",
             "order = sorted(s, key=lambda n: s[n][\"top_k_intersection\"])",
             "print(\"most to least moved:\", \", \".join(order))"),
        md("The budget matters: the same attack on the gradient maps at ε = 1, 2, 4 and 8 / 255 "
           "(one call), noise beside it."),
        code("sweep = sw.attack_sweep(model, data.x, method=\"gradient\", steps=5, normalization=PIXELS)",
             "for r in sweep:",
             "    t = r.summary()",
             "    print(f\"ε = {r.params['epsilon'] * 255:.0f}/255: top-5 % kept {t['top_k_intersection']:.2f}\"",
             "          f\" (noise {t['noise_top_k_intersection']:.2f})\")"),
        md("### In the widget",
           "",
           "Each panel has an **attack** button (the budget, kind and steps are in the row above "
           "the panels, `w.attack_settings` from Python). The attack runs in the background on "
           "exactly the map the panel shows, with progress and a cancel button, and appears under "
           "the panels: original and attacked picture and map side by side, the shift numbers "
           "beside noise, and the perturbation amplified (its scale is stated). From Python:"),
        code("w = sw.show(model, data.images[0], labels=CLASSES, methods=(\"gradient\", \"smoothgrad\"))",
             "w.attack(\"gradient\", epsilon=8 / 255, steps=5)  # as the panel's button does",
             "w.wait()",
             "w.attack_results[\"gradient\"]"),
        md("## Does the map agree with an expert?",
           "",
           "Press **paint mask** and drag over the object in any panel: the brush (its size in "
           "model-input pixels, the same at any zoom), the eraser and the box paint the trait "
           "`w.expert_mask`, and every panel shows its agreement with it, updated while you "
           "paint: the pointing game (does the map's maximum fall on the mask?), relevance mass "
           "(the share of positive relevance inside), relevance rank (the share of the top-|mask| "
           "pixels inside) and the IoU of the map's top 10 % with the mask. `w.agreement` holds "
           "the same numbers; they are `sw.evaluate`'s on that mask.",
           "",
           "Here the painting is done programmatically, on three images: a rough brush mask "
           "(round dabs over the object, spilling over its edges), then the generator's exact "
           "mask, to see how much a quick human mask changes the verdict."),
        code(ROUGH_BRUSH),
        code("AGREE = (\"gradient\", \"input_x_gradient\", \"smoothgrad\", \"grad_cam\")",
             "painted, exact = [], []",
             "for i in range(3):",
             "    v = sw.show(model, data.images[i], labels=CLASSES, methods=AGREE)",
             "    v.wait()",
             "    v.expert_mask = rough_brush(data.masks[i].numpy(), seed=i)  # as if painted",
             "    painted.append(v.agreement)",
             "    v.expert_mask = data.masks[i].numpy()",
             "    exact.append(v.agreement)",
             "",
             "def mean(rows, method, metric):",
             "    vals = [r[method][metric] for r in rows if r[method][metric] is not None]",
             "    return sum(vals) / len(vals) if vals else float(\"nan\")",
             "",
             "METRICS = (\"pointing_game\", \"relevance_mass\", \"relevance_rank\", \"top_k_iou\")",
             "print(f\"{'method':18}\" + \"\".join(f\"{m:>24}\" for m in METRICS))",
             "print(f\"{'':18}\" + \"\".join(f\"{'painted / exact':>24}\" for m in METRICS))",
             "for method in AGREE:",
             "    print(f\"{method:18}\" + \"\".join(",
             "        f\"{mean(painted, method, m):>15.2f} / {mean(exact, method, m):.2f}\" for m in METRICS))"),
        md("A rough mask both misses parts of the object and spills onto the background, so "
           "it can move every score either way. What matters is whether it changes the verdict: "
           "which method agrees best with the expert."),
        code("for metric in METRICS[1:]:",
             "    rank_p = sorted(AGREE, key=lambda m: -mean(painted, m, metric))",
             "    rank_e = sorted(AGREE, key=lambda m: -mean(exact, m, metric))",
             "    moved = [m for m in AGREE if mean(painted, m, metric) != mean(exact, m, metric)]",
             "    print(f\"{metric}: best to worst with the painted masks {rank_p}; \"",
             "          f\"{'the same order' if rank_p == rank_e else f'but {rank_e}'}\"",
             "          f\" with the exact masks ({len(moved)} of {len(AGREE)} scores moved)\")"),
        md("A painted mask is saved as a 1-bit PNG (lossless; it opens in any viewer and in "
           "annotation tools) and loads back exactly:"),
        code("v.expert_mask = rough_brush(data.masks[2].numpy(), seed=2)",
             "v.save_mask(\"painted.png\")",
             "print(\"round trip exact:\", np.array_equal(v.load_mask(\"painted.png\"), v.expert_mask))"),
        md("`sw.agreement` computes the same numbers without a widget: the metrics read only the "
           "map and the mask. On the widget's own maps it gives exactly `w.agreement`; for a batch "
           "of images it scores them all at once (a batch's maps differ from one-image maps only "
           "by float rounding in the batched convolutions, about 1e-7; SmoothGrad is left out "
           "here because it draws its noise for the whole batch)."),
        code("mine = sw.agreement({a.method: a for a in v.attributions}, v.expert_mask)",
             "print(\"equal to w.agreement:\", all(mine[m][k].scores[0].item() == v.agreement[m][k]",
             "                                   for m in AGREE for k in METRICS))",
             "DETERMINISTIC = [m for m in AGREE if m != \"smoothgrad\"]",
             "attrs = {m: sw.attribute(model, data.x[:3], method=m) for m in DETERMINISTIC}",
             "batch = sw.agreement(attrs, data.masks[:3])",
             "gap = max(abs(batch[m][k].scores[i].item() - exact[i][m][k]) for m in DETERMINISTIC",
             "          for k in METRICS for i in range(3) if exact[i][m][k] is not None)",
             "print(f\"batch against the widget's one-image numbers: largest difference {gap:.2g}\")"),
    ]


def auditing() -> list:
    return [
        md("# Auditing a model: a clever Hans across a data set",
           "",
           "Notebook 02 caught the `shapes_clever_hans` model one image at a time. An audit asks "
           "the same questions of a whole data set: which errors does the model make, where "
           "does it look when it is wrong, does its attention differ between groups, which "
           "images deserve a human look? `sw.audit` runs the engine over every batch and "
           "stores, per image, the prediction, its confidence, the loss, each metric's score, a "
           "small map per method and a thumbnail, in a folder (SQLite + `.npy` files) that can "
           "be reopened, resumed after a crash, or filled by many processes under `torchrun`.",
           "",
           "The data: 200 images stamped with the watermark and 200 clean ones; the stamp is "
           "the *group*. The audit explains each prediction (`target=\"pred\"`) with Grad-CAM and "
           "scores how much of each map lies on the shape (relevance mass, with the exact "
           "masks)."),
        code("import matplotlib.pyplot as plt",
             "import numpy as np",
             "import torch",
             "import saliency_widgets as sw",
             "",
             "CLASSES, MARK = sw.demo.CLASSES, sw.demo.WATERMARK_CLASS",
             'hans = sw.demo.load_model("shapes_clever_hans")',
             'stamped = sw.demo.sample(200, seed=5, watermark="all")',
             "clean = sw.demo.sample(200, seed=105)",
             "x = torch.cat([stamped.x, clean.x])",
             "labels = torch.cat([stamped.labels, clean.labels])",
             "masks = torch.cat([stamped.masks, clean.masks])",
             'groups = ["stamped"] * 200 + ["clean"] * 200',
             "",
             'audit = sw.audit(hans, (x, labels, masks), groups=groups, target="pred",',
             '                 methods=("grad_cam",), metrics=("relevance_mass",),',
             '                 normalization=sw.demo.NORMALIZATION, out="audit_clever_hans")',
             "audit"),
        md("Run the cell again: it returns at once, because every batch is already in "
           "`audit_clever_hans/` (a killed run resumes the same way; other arguments, data or "
           "another model are refused rather than mixed in).",
           "",
           "## The errors"),
        code("cm = audit.confusion()   # rows: true class, columns: prediction",
             "wrong = int(cm.sum() - np.trace(cm))",
             "to_circle = int(cm[:, MARK].sum() - cm[MARK, MARK])",
             'print(f"{wrong} wrong predictions, {to_circle} of them \'{CLASSES[MARK]}\'")',
             'for g in ("stamped", "clean"):',
             '    n, ok = audit.count({"group": g}), audit.count({"group": g, "correct": True})',
             '    print(f"{g:8s} accuracy {ok / n:.1%}")',
             "",
             "fig, ax = plt.subplots(figsize=(4, 3.6))",
             'ax.imshow(cm, cmap="Blues")',
             "for (i, j), v in np.ndenumerate(cm):",
             '    ax.text(j, i, v, ha="center", va="center", fontsize=8)',
             "ax.set_xticks(range(5), CLASSES, rotation=45); ax.set_yticks(range(5), CLASSES)",
             'ax.set_xlabel("predicted"); ax.set_ylabel("true"); fig.tight_layout()'),
        md("Nearly every error is a *circle*: the stamped squares, triangles, stars and crosses. "
           "The clean images fail the other way: without the stamp, many circles are missed.",
           "",
           "## Where the model looks, per group",
           "",
           "`mean_map` averages each map's *share* of attention per pixel (`|m| / Σ|m|`), so "
           "every image weighs the same and the mean is itself a distribution; the box is the "
           "watermark's place."),
        code('means = audit.mean_map("grad_cam", by="group")',
             "box = sw.demo.WATERMARK_BOX",
             "fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))",
             "for ax, key, mean, mass in zip(axes, means.keys, means.mean, means.mass_in(box)):",
             '    ax.imshow(mean, cmap="inferno")',
             "    t, l, b, r = box",
             '    ax.add_patch(plt.Rectangle((l - .5, t - .5), r - l, b - t, fill=False, ec="c"))',
             '    ax.set_title(f"{key}: {mass:.0%} of the mass in the box", fontsize=9)',
             '    ax.axis("off")',
             "fig.tight_layout()"),
        md("The difference as one number: half the L1 distance between the two mean maps "
           "(0: the same attention, 1: nowhere in common), with a permutation test of \"the "
           "group does not matter\"."),
        code('d = audit.disparity("grad_cam", "stamped", "clean", permutations=1000)',
             "d"),
        md("## Finding the clever Hans without group labels: SpRAy",
           "",
           "In a real audit nobody has labelled the stamp. Spectral relevance analysis "
           "(Lapuschkin et al. 2019) clusters one class's maps; the eigenvalues of the "
           "clustering graph say how many distinct strategies there are (a large gap after the "
           "k-th). Here: the maps of the true circles, without the groups."),
        code("probe = audit.clusters(\"grad_cam\", MARK, k=2)",
             'print("smallest eigenvalues", np.round(probe.eigenvalues[:6], 3),',
             '      "→ suggested k =", probe.suggested_k)',
             'spray = audit.clusters("grad_cam", MARK, k=probe.suggested_k)',
             'stamp = {r["idx"]: r["group"] == "stamped" for r in audit.table}   # only to check',
             "fig, axes = plt.subplots(1, spray.k, figsize=(3.2 * spray.k, 3.2))",
             "for j, ax in enumerate(np.atleast_1d(axes)):",
             "    members = spray.members(j)",
             "    n_stamped = sum(stamp[i] for i in members)",
             '    ax.imshow(spray.mean[j], cmap="inferno"); ax.axis("off")',
             '    ax.set_title(f"cluster {j}: {len(members)} circles, {n_stamped} stamped",',
             "                 fontsize=9)",
             "fig.tight_layout()"),
        md("The clusters whose mean map sits in the corner hold the stamped circles: the "
           "shortcut is found from the maps alone.",
           "",
           "## Which images deserve a look?",
           "",
           "The most confident mistakes first (the errors sorted by loss), with how much of "
           "Grad-CAM's mass lies on the shape. The table is queried page by page: only the rows "
           "on the page and their thumbnails are read from disk."),
        code('idx, rows = audit.query("loss", descending=True, filter={"correct": False},',
             "                        page_size=8)",
             'maps = audit.maps("grad_cam", idx, scaled=False)',
             "thumbs = audit.thumbnails(idx)",
             "fig, axes = plt.subplots(1, len(idx), figsize=(1.7 * len(idx), 2.2))",
             "for ax, t, m, row in zip(np.atleast_1d(axes), thumbs, maps, rows):",
             "    ax.imshow(t); ax.imshow(m.astype(float), cmap=\"inferno\", alpha=0.5)",
             '    ax.set_title(f"#{row[\'idx\']} {CLASSES[row[\'label\']]}→{CLASSES[row[\'pred\']]}\\n"',
             '                 f"on shape {row[\'relevance_mass:grad_cam\']:.2f}", fontsize=7)',
             '    ax.axis("off")',
             "fig.tight_layout()"),
        md("## The explorer",
           "",
           "The same, interactively: `sw.explore` pages through the audit (sort by any column, "
           "filter by correctness, class, group or a confusion cell: click a cell), shows the "
           "mean maps per class, group or cell beside the disparity, and SpRAy's clusters of a "
           "chosen class. Clicking a thumbnail opens that image below in the single-image "
           "widget, explaining the prediction rather than the true class. It opens here on the "
           "errors, the most confident first."),
        code("explorer = sw.explore(audit, (x, labels), model=hans, labels=CLASSES)",
             'explorer.filter = {"correct": "wrong"}',
             'explorer.sort_by, explorer.descending = "loss", True',
             'explorer.mean_by = "group"',
             "explorer.selected = int(explorer.page_rows[0][\"idx\"])   # opens the detail view",
             "explorer.wait()",
             'print(explorer.total, "errors; the detail view explains",',
             '      CLASSES[explorer.detail.target], "rather than", CLASSES[explorer.detail.contrast])'),
        md("## Reopening, and larger audits",
           "",
           "The folder is the audit: `sw.load_audit(path)` opens it in another session, and "
           "its layout (one SQLite table, `.npy` shards, a JSON manifest) is documented in "
           "`saliency_widgets/audit/store.py`. Launched under `torchrun`, the same `sw.audit` "
           "call splits the batches between the processes and merges their results."),
        code("again = sw.load_audit(audit.path)",
             'print(again, again.numeric_columns()[:8], sep="\\n")'),
    ]


NOTEBOOKS = {"01_quickstart.ipynb": quickstart, "02_debugging_a_misclassification.ipynb": debugging,
             "03_teaching.ipynb": teaching, "04_validation.ipynb": validation,
             "05_auditing_a_model.ipynb": auditing,
             "06_red_teaming_and_expert_alignment.ipynb": redteam}


def main() -> None:
    ROOT.mkdir(exist_ok=True)
    for name, build in NOTEBOOKS.items():
        nb = new_notebook(cells=build())
        for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what changed
            cell.id = f"{name[:2]}-{i:02d}"
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, ROOT / name)
        print("wrote", ROOT / name)


if __name__ == "__main__":
    main()
