"""The audit: every stored row, map and score equals the engine's answer on its batch; seeding,
inputs, refusals, resumption, hygiene, and the readers the explorer pages with.

The models are the bundled demo CNNs on 64 px demo images (a batch takes milliseconds).
Crash safety and torchrun are in test_audit_crash.py, the aggregates in test_audit_aggregate.py.
"""

from __future__ import annotations

import gc
import math
import sqlite3

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import saliency_widgets as sw
from saliency_widgets.audit import store, synthetic_audit
from saliency_widgets.audit.run import batch_seed

N, B = 20, 8  # three batches: 8, 8, 4


@pytest.fixture(scope="module")
def model():
    return sw.demo.load_model("shapes")


@pytest.fixture(scope="module")
def hans():
    return sw.demo.load_model("shapes_clever_hans")


@pytest.fixture(scope="module")
def data():
    return sw.demo.sample(N, seed=7, watermark="train")


def batches(n: int = N, b: int = B):
    return [(k, slice(k * b, min(n, (k + 1) * b))) for k in range(math.ceil(n / b))]


def nan_equal(a, b) -> bool:
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                          equal_nan=True)


def column(audit, name):
    return [r[name] for r in audit.table]


def same_rows(a, b) -> bool:
    """Row lists equal, NaN equal to NaN (undefined scores are NaN)."""
    def key(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: key(v) for k, v in r.items()} for r in a] == \
        [{k: key(v) for k, v in r.items()} for r in b]


# --- every row is the engine's answer on its batch ---------------------------------------------
@pytest.fixture(scope="module")
def labelled(model, data, tmp_path_factory):
    methods = {"grad_cam": {}, "integrated_gradients": {"steps": 4}}
    audit = sw.audit(model, data, methods=methods, metrics=("relevance_mass", "sparseness"),
                     groups="watermarked", batch_size=B, progress=False,
                     normalization=sw.demo.NORMALIZATION,
                     out=tmp_path_factory.mktemp("labelled") / "audit")
    return audit, methods


def test_rows_maps_and_scores_equal_the_engine_per_batch(model, data, labelled):
    audit, methods = labelled
    assert audit.complete and len(audit) == N and audit.classes == 5
    table = audit.table
    assert [r["idx"] for r in table] == list(range(N))
    for k, sl in batches():
        idx = np.arange(N)[sl]
        x, y = data.x[sl], data.labels[sl]
        rows = table[sl]
        assert all(r["batch"] == k for r in rows)
        for name, params in methods.items():
            attr = sw.attribute(model, x, y.tolist(), method=name, seed=batch_seed(0, k),
                                normalization=sw.demo.NORMALIZATION, **params)
            m = sw.reduce_channels(attr.values, "sum")  # 64 px images, 64 px maps: no resize
            scale = m.flatten(1).abs().amax(1)
            assert np.allclose([r[f"scale:{name}"] for r in rows], scale.numpy(), rtol=1e-6)
            # float16 keeps 11 significant bits of each map divided by its peak
            stored = torch.from_numpy(audit.maps(name, idx))
            assert (stored - m).abs().le(scale[:, None, None] * 2.0 ** -11 + 1e-12).all()
            for metric in audit.metrics:
                res = sw.evaluate(model, x, attr, metric=metric, seed=batch_seed(0, k),
                                  masks=data.masks[sl])
                assert nan_equal([r[f"{metric}:{name}"] for r in rows], res.scores.numpy())
        with torch.no_grad():
            logits = model(x).double()
        prob = logits.softmax(1)
        assert [r["pred"] for r in rows] == logits.argmax(1).tolist()
        assert [r["label"] for r in rows] == y.tolist()
        assert [r["target"] for r in rows] == y.tolist()  # target="label"
        assert all(r["contrast"] is None for r in rows)
        assert [r["correct"] for r in rows] == (logits.argmax(1) == y).long().tolist()
        assert np.allclose([r["confidence"] for r in rows], prob.amax(1).numpy(), rtol=1e-6)
        ce = F.cross_entropy(logits, y, reduction="none")
        assert np.allclose([r["loss"] for r in rows], ce.numpy(), rtol=1e-6, atol=1e-12)
        top = prob.topk(5, dim=1)
        for j in range(5):
            assert [r[f"top{j + 1}"] for r in rows] == top.indices[:, j].tolist()
            assert np.allclose([r[f"top{j + 1}_prob"] for r in rows], top.values[:, j].numpy(),
                               rtol=1e-6)
        assert [r["group"] for r in rows] == data.watermarked[sl].long().tolist()
    # the thumbnails are the pixels the model saw
    assert np.array_equal(audit.thumbnails(np.arange(N)), data.images)


def test_entropy_column_is_that_of_the_stored_map(labelled):
    audit, _ = labelled
    unit = audit.maps("grad_cam", np.arange(N), scaled=False).astype(np.float64)
    a = np.abs(unit).reshape(N, -1)
    blank = a.sum(1) == 0
    assert blank.any()  # an all-zero Grad-CAM: its entropy is undefined
    p = a[~blank] / a[~blank].sum(1, keepdims=True)
    h = np.full(N, np.nan)
    h[~blank] = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(1) / np.log(4096)
    assert np.allclose(column(audit, "entropy:grad_cam"), h, rtol=1e-12, atol=1e-12,
                       equal_nan=True)


@pytest.mark.parametrize("target", ["pred", "pred_vs_label"])
def test_targets_and_contrasts(hans, target, tmp_path):
    data = sw.demo.sample(16, seed=2, watermark="all")  # stamped shapes: the model errs
    audit = sw.audit(hans, data, target=target, batch_size=B, out=tmp_path / "a", progress=False)
    table = audit.table
    labels = np.array(column(audit, "label"))
    pred = np.array(column(audit, "pred"))
    assert (pred != labels).sum() >= 3  # the test needs both cases
    assert column(audit, "target") == pred.tolist()
    runner = np.array(column(audit, "top2"))
    if target == "pred":
        assert all(c is None for c in column(audit, "contrast"))
        contrast = None
    else:
        contrast = np.where(pred != labels, labels, runner)
        assert column(audit, "contrast") == contrast.tolist()
    for _, sl in batches(16):
        attr = sw.attribute(hans, data.x[sl], pred[sl].tolist(), method="grad_cam",
                            contrast=None if contrast is None else contrast[sl].tolist())
        scale = np.array([r["scale:grad_cam"] for r in table[sl]])
        stored = audit.maps("grad_cam", np.arange(16)[sl])
        assert np.abs(stored - attr.values[:, 0].numpy()).max() <= scale.max() * 2.0 ** -11


# --- determinism ------------------------------------------------------------------------------
def test_each_batch_is_seeded_from_seed_and_its_index(model, data, tmp_path):
    params = {"smoothgrad": {"samples": 3}}
    audit = sw.audit(model, data, methods=params, seed=5, batch_size=B, out=tmp_path / "a",
                     progress=False)
    x1 = data.x[B:2 * B]
    mine = sw.attribute(model, x1, data.labels[B:2 * B].tolist(), method="smoothgrad",
                        samples=3, seed=batch_seed(5, 1)).values
    other = sw.attribute(model, x1, data.labels[B:2 * B].tolist(), method="smoothgrad",
                         samples=3, seed=batch_seed(5, 0)).values
    stored = torch.from_numpy(audit.maps("smoothgrad", np.arange(B, 2 * B)))
    m, o = mine.sum(1), other.sum(1)
    scale = m.flatten(1).abs().amax(1)[:, None, None]
    assert (stored - m).abs().le(scale * 2.0 ** -11 + 1e-12).all()
    assert not (stored - o).abs().le(scale * 2.0 ** -11 + 1e-12).all()  # the seed matters
    # a batch does not depend on the batches after it, nor on a second run
    short = sw.audit(model, sw.demo.sample(12, seed=7, watermark="train"), methods=params,
                     seed=5, batch_size=B, out=tmp_path / "b", progress=False)
    again = sw.audit(model, data, methods=params, seed=5, batch_size=B, out=tmp_path / "c",
                     progress=False)
    assert same_rows(short.table, audit.table[:12])
    assert same_rows(again.table, audit.table)
    every = np.arange(N)
    assert np.array_equal(again.maps("smoothgrad", every, scaled=False),
                          audit.maps("smoothgrad", every, scaled=False))


# --- inputs -----------------------------------------------------------------------------------
class DictItems(Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"image": self.data.x[i], "label": int(self.data.labels[i]),
                "mask": self.data.masks[i], "group": "stamped" if self.data.watermarked[i]
                else "clean"}


def test_every_kind_of_data_gives_the_same_audit(model, data, tmp_path):
    kw = dict(methods=("grad_cam",), metrics=("pointing_game",), progress=False)
    groups = ["stamped" if w else "clean" for w in data.watermarked.tolist()]
    tensors = (data.x, data.labels, data.masks)
    ref = sw.audit(model, tensors, groups=groups, batch_size=B, out=tmp_path / "ref", **kw)
    variants = {
        "demo sample": dict(data=data, groups=groups),
        "TensorDataset": dict(data=TensorDataset(*tensors), groups=groups),
        "dict items": dict(data=DictItems(data)),
        "dict items, group key": dict(data=DictItems(data), groups="group"),
        "DataLoader": dict(data=DataLoader(TensorDataset(*tensors), batch_size=B),
                           groups=groups),
    }
    every = np.arange(N)
    for i, (name, v) in enumerate(variants.items()):
        b = None if name == "DataLoader" else B  # the loader's batch size is the default
        got = sw.audit(model, v["data"], groups=v.get("groups"), batch_size=b,
                       out=tmp_path / f"v{i}", **kw)
        assert got.batch_size == B, name
        assert same_rows(got.table, ref.table), name
        assert np.array_equal(got.maps("grad_cam", every, scaled=False),
                              ref.maps("grad_cam", every, scaled=False)), name
        assert np.array_equal(got.thumbnails(every), ref.thumbnails(every)), name


class Stream(IterableDataset):
    def __iter__(self):
        yield from ()


class PilLike(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return object(), 0


class NoLen(Dataset):
    def __getitem__(self, i):
        return torch.zeros(3, 8, 8), 0


@pytest.mark.parametrize("bad, match", [
    (lambda d: DataLoader(TensorDataset(d.x, d.labels), shuffle=True), "order is not fixed"),
    (lambda d: Stream(), "IterableDataset"),
    (lambda d: d.x, "bare tensor"),
    (lambda d: (d.x, d.labels.float()), "integer class indices"),
    (lambda d: (d.x, d.labels[:3]), "20 images but 3 labels"),
    (lambda d: (d.x[:, :, :32], d.labels, d.masks), "masks have shape"),
    (lambda d: PilLike(), "images must be tensors|could not be batched"),
    (lambda d: NoLen(), r"NoLen\) has no len\(\)"),
    (lambda d: 42, "must be a Dataset"),
])
def test_bad_data_is_refused_clearly(model, data, bad, match, tmp_path):
    with pytest.raises(sw.SaliencyError, match=match):
        sw.audit(model, bad(data), out=tmp_path / "a", progress=False, batch_size=4)


@pytest.mark.parametrize("kw, match", [
    (dict(groups=[0, 1]), "groups has 2 entries"),
    (dict(groups="nope"), "not a field of the demo sample"),
    (dict(target="truth"), "target='truth'"),
    (dict(methods="grad_cam"), "wrap it in a list"),
    (dict(methods=("grad_cam",), metrics={"deletion": {"stepz": 3}}), "stepz"),
    (dict(methods=("gradcam",)), "did you mean 'grad_cam'"),
    (dict(map_size=0), "map_size"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments_are_refused_clearly(model, data, kw, match, tmp_path):
    with pytest.raises(sw.SaliencyError, match=match):
        sw.audit(model, data, out=tmp_path / "a", progress=False, batch_size=4, **kw)


def test_labels_out_of_range_are_refused_with_the_example(model, data, tmp_path, monkeypatch):
    labels = data.labels.clone()
    labels[13] = 9
    with pytest.raises(sw.SaliencyError, match="example 13 has label 9"):
        sw.audit(model, (data.x, labels), out=tmp_path / "a", progress=False, batch_size=B)
    # a temporary folder is removed when the audit fails: nobody could resume it
    from saliency_widgets.audit import run
    made = []
    monkeypatch.setattr(run.tempfile, "mkdtemp",
                        lambda **kw: made.append(str(tmp_path / "tmp")) or made[-1])
    with pytest.raises(sw.SaliencyError, match="example 13 has label 9"):
        sw.audit(model, (data.x, labels), progress=False, batch_size=B)
    assert made and not (tmp_path / "tmp").exists()


# --- an existing out ----------------------------------------------------------------------------
def test_other_arguments_data_or_model_on_an_existing_out_are_refused(model, hans, data,
                                                                      tmp_path):
    out = tmp_path / "a"
    kw = dict(methods=("grad_cam",), batch_size=B, progress=False)
    first = sw.audit(model, data, out=out, **kw)
    before = first.table
    cases = [
        (dict(model=hans), "another model"),
        (dict(data=sw.demo.sample(N, seed=8)), "other data"),
        (dict(data=sw.demo.sample(N + 1, seed=7, watermark="train")), "length"),
        (dict(seed=1), "seed"),
        (dict(methods=("gradient",)), "methods"),
        (dict(metrics=("sparseness",)), "metrics"),
        (dict(target="pred"), "target"),
        (dict(map_size=32), "map_shape"),
        (dict(batch_size=4), "batch_size"),
        (dict(normalization=sw.demo.NORMALIZATION), "normalization"),
        (dict(masks=~data.masks), "masks"),
        (dict(groups="watermarked"), "groups"),
    ]
    for change, match in cases:
        args = {"model": model, "data": data, **kw, **change}
        with pytest.raises(sw.SaliencyError, match=match):
            sw.audit(args.pop("model"), args.pop("data"), out=out, **args)
    with pytest.raises(sw.SaliencyError, match="already holds an audit"):
        sw.audit(model, data, out=out, resume=False, **kw)
    # nothing was touched, and the same call is still welcome
    assert same_rows(sw.load_audit(out).table, before)
    assert same_rows(sw.audit(model, data, out=out, **{**kw, "batch_size": None}).table, before)


def test_a_folder_holding_other_things_is_refused(model, data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(sw.SaliencyError, match="not empty and holds no audit.*notes.txt"):
        sw.audit(model, data, out=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_computes_only_the_missing_batches(model, data, tmp_path):
    out = tmp_path / "a"
    calls = []
    full = sw.audit(model, data, batch_size=B, out=out, progress=lambda d, t: calls.append(t))
    assert calls[-1] == N
    before = full.table
    con = sqlite3.connect(out / store.DB)  # lose batch 1 as a crash would
    with con:
        con.execute("DELETE FROM examples WHERE batch = 1")
        con.execute("DELETE FROM meta")
    con.close()
    assert not sw.Audit(out).complete
    with pytest.warns(sw.SaliencyWarning, match="incomplete"):
        assert len(sw.load_audit(out)) == N - B
    calls.clear()
    again = sw.audit(model, data, out=out, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (B, B)  # one batch's worth of work
    assert same_rows(again.table, before)
    calls.clear()
    sw.audit(model, data, out=out, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 0)]  # complete: nothing to do


def test_a_temporary_audit_is_removed_with_its_object(model, data):
    audit = sw.audit(model, data, batch_size=B, progress=False)
    path = audit.path
    assert (path / store.DB).exists()
    del audit
    gc.collect()
    assert not path.exists()


def test_out_is_required_under_torchrun(model, data, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(sw.SaliencyError, match="shared folder"):
        sw.audit(model, data, progress=False)


def test_model_and_data_are_untouched(data, tmp_path):
    net = sw.demo.load_model("shapes")
    net.train()
    net.features[0].weight.requires_grad_(False)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x, labels = data.x.clone(), data.labels.clone()
    with pytest.warns(sw.SaliencyWarning, match="training mode"):
        sw.audit(net, (data.x, data.labels), methods=("grad_cam", "gradient"), batch_size=B,
                 out=tmp_path / "a", progress=False)
    assert net.training and all(m.training for m in net.modules())
    assert not net.features[0].weight.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert torch.equal(data.x, x) and torch.equal(data.labels, labels)


def test_engine_warnings_name_the_batch(model, tmp_path):
    x = sw.demo.sample(6, seed=1).x
    masks = torch.zeros(6, 64, 64, dtype=torch.bool)  # empty masks: no pointing game
    with pytest.warns(sw.SaliencyWarning) as seen:
        sw.audit(model, (x, torch.zeros(6, dtype=torch.long), masks), methods=("gradient",),
                 metrics=("pointing_game",), batch_size=4, out=tmp_path / "a", progress=False)
    said = [str(w.message) for w in seen]
    # once per kind of warning, with the batch's data-set range; then a count
    assert said == ["batch 0 (examples 0–3, positions within the batch): pointing_game: "
                    "undefined (NaN) for example(s) [0, 1, 2, 3]: the mask is empty",
                    "1 more batches warned the same: pointing_game: undefined (NaN) for "
                    "example(s) […]: the mask is empty"]


# --- the readers --------------------------------------------------------------------------------
def _expected_page(table, sort_by, descending, keep, page, size):
    rows = [r for r in table if keep(r)]
    isnan = [isinstance(r[sort_by], float) and math.isnan(r[sort_by]) for r in rows]
    nan = [r for r, bad in zip(rows, isnan) if bad]
    ok = [r for r, bad in zip(rows, isnan) if not bad]
    ok.sort(key=lambda r: (-r[sort_by] if descending else r[sort_by], r["idx"]))
    ordered = ok + sorted(nan, key=lambda r: r["idx"])
    return [r["idx"] for r in ordered[page * size:(page + 1) * size]]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The explorer's scale: 50 000 rows (synthetic, written through the real store)."""
    return synthetic_audit(tmp_path_factory.mktemp("big") / "audit", 50_000, seed=1)


@pytest.fixture(scope="module")
def big_table(big):
    return big.table


def test_synthetic_store_is_a_complete_indexed_audit(big):
    assert big.complete and len(big) == 50_000 and big.manifest["synthetic"]
    con = sqlite3.connect(big.path / store.DB)
    names = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    con.close()
    assert {"ix_label", "ix_pred", "ix_correct", "ix_group", "ix_loss", "ix_cell"} <= names
    with pytest.raises(sw.SaliencyError):
        sw.audit(sw.demo.load_model("shapes"), sw.demo.sample(4), out=big.path, progress=False)


@pytest.mark.parametrize("sort_by, descending, filt, page", [
    ("loss", True, {"correct": False}, 0),
    ("confidence", False, {"label": 3, "group": "b"}, 2),
    ("relevance_mass:grad_cam", True, {"cell": (2, 5)}, 0),
    ("relevance_mass:grad_cam", False, None, 1041),
    ("entropy:grad_cam", True, {"pred": [1, 2], "correct": "wrong"}, 1),
    ("index", True, {"correct": "correct", "label": 0}, 3),
])
def test_query_pages_equal_a_direct_sort(big, big_table, sort_by, descending, filt, page):
    table = big_table
    keys = {"correct": lambda r, v: r["correct"] == int(v in (True, "correct")),
            "label": lambda r, v: r["label"] == v, "group": lambda r, v: r["group"] == v,
            "pred": lambda r, v: r["pred"] in (v if isinstance(v, list) else [v]),
            "cell": lambda r, v: (r["label"], r["pred"]) == tuple(v)}
    keep = lambda r: all(keys[k](r, v) for k, v in (filt or {}).items())  # noqa: E731
    column = "idx" if sort_by == "index" else sort_by
    idx, rows = big.query(sort_by, descending, filt, page, 48)
    assert idx.tolist() == _expected_page(table, column, descending, keep, page, 48)
    assert [r["idx"] for r in rows] == idx.tolist()
    assert big.count(filt) == sum(map(keep, table))
    if len(idx):
        maps, thumbs = big.maps("grad_cam", idx, scaled=False), big.thumbnails(idx)
        assert maps.shape == (len(idx), 16, 16) and maps.dtype == np.float16
        assert thumbs.shape == (len(idx), 16, 16, 3) and thumbs.dtype == np.uint8
        b = big.batch_size
        for j in (0, len(idx) - 1):
            k, r = divmod(int(idx[j]), b)
            assert np.array_equal(maps[j], np.load(store.shard_path(big.path, k, "grad_cam"))[r])
        scaled = big.maps("grad_cam", idx)
        assert np.allclose(scaled, maps.astype(np.float32)
                           * np.array([r["scale:grad_cam"] for r in rows])[:, None, None])


@pytest.mark.parametrize("call, match", [
    (lambda a: a.query("group"), "not a numeric column"),
    (lambda a: a.query("losss"), "unknown column 'losss'"),
    (lambda a: a.query(filter={"klass": 1}), "unknown filter key"),
    (lambda a: a.query(page=-1), "page must be"),
    (lambda a: a.maps("gradient", [0]), "not in this audit"),
    (lambda a: a.thumbnails([50_000]), "out of range"),
])
def test_reader_errors(big, call, match):
    with pytest.raises(sw.SaliencyError, match=match):
        call(big)


def test_distinct_values_for_the_filters(big, big_table):
    assert big.values("group") == ["a", "b"]
    assert big.values("label") == sorted({r["label"] for r in big_table})
    assert big.values("correct") == [0, 1]


def test_to_pandas_and_load_audit(labelled):
    pd = pytest.importorskip("pandas")
    audit, _ = labelled
    df = sw.load_audit(audit.path).to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == N
    assert list(df.index) == list(range(N))
    assert "relevance_mass:grad_cam" in df.columns
