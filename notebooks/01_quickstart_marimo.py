"""The quickstart as a marimo notebook: `marimo edit notebooks/01_quickstart_marimo.py`
(or `marimo run` to serve it as an app). The widget is the same anywidget as in Jupyter."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    mo.md(
        """
        # Quickstart in marimo: where did the model look?

        The demo data set draws one shape per image (circle, square, triangle, star, cross) on a
        textured background with distractors, and knows the exact mask of each shape. `shapes`
        is a small CNN trained on it that ships with the package. In marimo, wrap the widget in
        `mo.ui.anywidget` to display it; every control works as in JupyterLab.
        """
    )
    return (mo,)


@app.cell
def _(mo):
    import saliency_widgets as sw

    model, data = sw.demo.load_model("shapes"), sw.demo.sample(8, seed=7)
    w = sw.show(model, data.images[3], labels=sw.demo.CLASSES)
    view = mo.ui.anywidget(w)
    view
    return data, model, sw, view, w


@app.cell
def _(mo, view, w):
    # `view.value` is the widget's state: this cell runs again whenever a selection changes in
    # the widget, and shows what Python sees.
    selected = view.value.get("methods_selected", w.methods_selected)
    contrast = "none" if w.contrast is None else w.labels[w.contrast]
    mo.md(f"Python sees: methods {', '.join(selected)}; target **{w.labels[w.target]}**, "
          f"rather than **{contrast}**; status {w.status}.")
    return


@app.cell
def _(data, model, sw):
    # The maps are ordinary tensors from the engine, for a whole batch, checkable with the masks.
    attr = sw.attribute(model, data.x, data.labels, method="integrated_gradients", steps=16,
                        normalization=sw.demo.NORMALIZATION)
    hits = sw.evaluate(model, data.x, attr, metric="pointing_game", masks=data.masks)
    f"the IG map's maximum lies on the shape in {hits.mean:.0%} of the images"
    return


if __name__ == "__main__":
    app.run()
