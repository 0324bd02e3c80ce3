"""What the audit reads, as batches ``k`` = examples ``k·b … k·b+b−1`` in a fixed order.

Accepted: a map-style ``Dataset`` or a ``DataLoader`` with a sequential sampler (its workers,
collate function and pinning are reused) yielding ``(image, label)``, ``(image, label, mask)``
or dicts with ``image``, ``label`` and optionally ``mask`` and ``group``; a tuple
``(x, labels)`` / ``(x, labels, masks)`` of tensors; or a ``sw.demo.sample(...)`` record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Sized

import numpy as np
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, IterableDataset,
                              SequentialSampler, Subset)

from ..errors import SaliencyError


@dataclass
class Batch:
    """One batch: ``x`` float ``(n, C, H, W)``, ``labels`` int64 ``(n,)`` on the CPU, ``masks``
    bool ``(n, H, W)`` or None, ``groups`` n plain values or None."""

    k: int
    start: int
    x: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    groups: list[Any] | None


def plain(value: Any) -> Any:
    """A group label as SQLite stores it: bools as 0/1, numbers as numbers, the rest as text."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _group_values(groups: Any, n: int) -> list[Any]:
    if isinstance(groups, (torch.Tensor, np.ndarray)):
        groups = groups.reshape(-1).tolist()
    values = [plain(g) for g in groups]
    if len(values) != n:
        raise SaliencyError(f"groups has {len(values)} entries but the data has {n} examples; "
                            f"give one group label per example (or the key of the items' group)")
    return values


def _masks_tensor(masks: Any, n: int | None) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        masks = torch.as_tensor(np.asarray(masks))
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.dim() != 3 or (n is not None and masks.shape[0] != n):
        raise SaliencyError(f"masks must have shape (N, H, W) with one mask per example"
                            f"{'' if n is None else f' (N = {n})'}, got {tuple(masks.shape)}")
    return masks.bool()


def _labels_tensor(labels: Any, n: int) -> torch.Tensor:
    t = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    t = t.reshape(-1)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise SaliencyError(f"labels must be integer class indices, got dtype {t.dtype}; "
                            f"convert them with .long()")
    if t.numel() != n:
        raise SaliencyError(f"the data has {n} images but {t.numel()} labels")
    return t.long().cpu()


class Source:
    """Batches of the audited data, read in order, only those asked for."""

    def __init__(self, data: Any, *, masks: Any = None, groups: Any = None) -> None:
        self.default_batch_size: int | None = None
        self._loader_kwargs: dict[str, Any] = {}
        self._collate: Callable[[list[Any]], Any] | None = None
        self._dataset: Dataset | None = None
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._group_key: str | None = None
        self._groups: list[Any] | None = None
        given_masks = masks
        if _is_demo_sample(data):
            masks = data.masks if masks is None else masks
            if isinstance(groups, str):
                if not hasattr(data, groups):
                    raise SaliencyError(f"groups={groups!r} is not a field of the demo sample; "
                                        f"use 'watermarked' or one label per example")
                groups = getattr(data, groups)
            data = (data.x, data.labels)
        if isinstance(data, DataLoader):
            self._from_loader(data)
        elif isinstance(data, (tuple, list)) and len(data) in (2, 3) and \
                isinstance(data[0], torch.Tensor):
            self._from_tensors(data)
        elif isinstance(data, torch.Tensor):
            raise SaliencyError(f"data is a bare tensor of shape {tuple(data.shape)}; the audit "
                                f"needs the labels too: pass (x, labels) or (x, labels, masks)")
        elif isinstance(data, IterableDataset):
            raise SaliencyError("data is an IterableDataset, which has no fixed order and no "
                                "random access; the audit needs a map-style Dataset (len and [i])")
        elif isinstance(data, Dataset) or (hasattr(data, "__getitem__") and
                                           hasattr(data, "__len__")):
            self._dataset = data
        else:
            raise SaliencyError(f"data must be a Dataset, a DataLoader with a sequential "
                                f"sampler, (x, labels[, masks]) tensors or a sw.demo sample; "
                                f"got {type(data).__name__}")
        if self._tensors is not None:
            self.length: int = len(self._tensors[0])
        else:
            dataset = self._map_style()
            if not isinstance(dataset, Sized):  # a Dataset need not define __len__
                raise SaliencyError(f"the data set ({type(dataset).__name__}) has no len(); the "
                                    f"audit needs a map-style Dataset with __len__ and "
                                    f"__getitem__")
            self.length = len(dataset)
        if self.length == 0:
            raise SaliencyError("the data set is empty; there is nothing to audit")
        self.masks = None if masks is None else _masks_tensor(masks, self.length)
        # masks passed as an argument (the data's own masks are part of the data's identity)
        self.given_masks = None if given_masks is None else self.masks
        if isinstance(groups, str):
            if self._tensors is not None:
                raise SaliencyError(f"groups={groups!r} names a key of dict items, but the data "
                                    f"are tensors; give one group label per example instead")
            self._group_key = groups
        elif groups is not None:
            self._groups = _group_values(groups, self.length)

    def groups_identity(self) -> Any:
        """What the manifest records of ``groups``: the key, or a hash of the labels."""
        if self._group_key is not None:
            return {"key": self._group_key}
        if self._groups is None:
            return None
        return {"sha256": hashlib.sha256(json.dumps(self._groups).encode()).hexdigest(),
                "distinct": len(set(map(repr, self._groups)))}

    # --- kinds of data ------------------------------------------------------------------------
    def _from_loader(self, loader: DataLoader) -> None:
        if isinstance(loader.dataset, IterableDataset):
            raise SaliencyError("the DataLoader reads an IterableDataset, which has no fixed "
                                "order; the audit needs a map-style Dataset")
        if not isinstance(loader.sampler, SequentialSampler) or (
                loader.batch_sampler is not None
                and type(loader.batch_sampler) is not BatchSampler):
            raise SaliencyError(f"the DataLoader uses {type(loader.sampler).__name__}, so its "
                                f"order is not fixed; the order defines the audit (batch k is "
                                f"examples k·b … k·b+b−1). Use DataLoader(dataset, shuffle=False)"
                                f" without a custom sampler, or pass the dataset itself")
        self._dataset = loader.dataset
        # batch_size=None turns automatic batching off (collate_fn then converts single items)
        self._collate = loader.collate_fn if loader.batch_size is not None else None
        self.default_batch_size = loader.batch_size
        kw: dict[str, Any] = {"num_workers": loader.num_workers, "pin_memory": loader.pin_memory,
                              "timeout": loader.timeout, "worker_init_fn": loader.worker_init_fn,
                              "multiprocessing_context": loader.multiprocessing_context}
        if loader.num_workers > 0:
            kw["prefetch_factor"] = loader.prefetch_factor
        self._loader_kwargs = kw

    def _from_tensors(self, data: Sequence[torch.Tensor]) -> None:
        x = data[0]
        if x.dim() != 4:
            raise SaliencyError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
        labels = _labels_tensor(data[1], x.shape[0])
        masks = _masks_tensor(data[2], x.shape[0]) if len(data) == 3 else None
        self._tensors = (x, labels, masks)

    # --- reading ------------------------------------------------------------------------------
    def batches(self, ks: Sequence[int], b: int) -> Iterator[Batch]:
        """Batches ``ks`` (ascending) of size ``b``, in that order."""
        ks = list(ks)
        if self._tensors is not None:
            x, labels, masks = self._tensors
            for k in ks:
                i, j = k * b, min(self.length, (k + 1) * b)
                yield self._finish(k, i, x[i:j], labels[i:j],
                                   None if masks is None else masks[i:j], None)
            return
        # whole batches in ascending order, only the data set's last one short: DataLoader
        # batches of size b line up with ours
        index = [i for k in ks for i in range(k * b, min(self.length, (k + 1) * b))]
        loader = DataLoader(Subset(self._map_style(), index), batch_size=b, shuffle=False,
                            collate_fn=self._collate, **self._loader_kwargs)
        it = iter(loader)
        for k in ks:
            try:
                items = next(it)
            except TypeError as err:
                raise SaliencyError(f"the data set's items could not be batched ({err}); "
                                    f"its images must be tensors of one shape: give it a "
                                    f"transform such as torchvision's ToTensor() and Resize") \
                    from err
            x, labels, masks, groups = self._parse(items)
            start = k * b
            if labels.shape[0] != min(self.length, start + b) - start:
                raise SaliencyError(f"batch {k}: the collate function returned "
                                    f"{labels.shape[0]} examples for {b}; the audit needs one "
                                    f"output row per item")
            yield self._finish(k, start, x, labels, masks, groups)

    def example(self, i: int) -> torch.Tensor:
        """Return example ``i``'s image ``(C, H, W)`` as the model takes it (one read)."""
        if not 0 <= i < self.length:
            raise SaliencyError(f"index {i} is out of range for a data set of {self.length}")
        if self._tensors is not None:
            return self._tensors[0][i]
        from torch.utils.data import default_collate

        items = (self._collate or default_collate)([self._map_style()[i]])
        return self._parse(items)[0][0]

    def _map_style(self) -> Dataset:
        """The data set read by index: set whenever the data are not in-memory tensors."""
        if self._dataset is None:
            raise RuntimeError("this Source holds in-memory tensors, not a data set")
        return self._dataset

    def _parse(self, items: Any) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        if isinstance(items, dict):
            missing = [key for key in ("image", "label") if key not in items]
            if missing:
                raise SaliencyError(f"dict items need the keys 'image' and 'label' (and may "
                                    f"have 'mask' and 'group'); missing {missing}, got "
                                    f"{sorted(items)}")
            groups = items.get(self._group_key or "group")
            if self._group_key is not None and self._group_key not in items:
                raise SaliencyError(f"groups={self._group_key!r} is not a key of the items; "
                                    f"keys: {sorted(items)}")
            x, labels, masks = items["image"], items["label"], items.get("mask")
        elif isinstance(items, (tuple, list)) and len(items) in (2, 3):
            if self._group_key is not None:
                raise SaliencyError(f"groups={self._group_key!r} names a key of dict items, but "
                                    f"the items are tuples; give one label per example")
            x, labels = items[0], items[1]
            masks = items[2] if len(items) == 3 else None
            groups = None
        else:
            raise SaliencyError(f"each item must be (image, label), (image, label, mask) or a "
                                f"dict with 'image' and 'label'; got {type(items).__name__}")
        if not isinstance(x, torch.Tensor):
            raise SaliencyError(f"images must be tensors, got {type(x).__name__}; give the data "
                                f"set a transform such as torchvision's ToTensor()")
        labels = _labels_tensor(labels, x.shape[0])
        if masks is not None:
            masks = _masks_tensor(masks, x.shape[0])
        if groups is not None:
            groups = _group_values(groups, x.shape[0])
        return x, labels, masks, groups

    def _finish(self, k: int, start: int, x: torch.Tensor, labels: torch.Tensor,
                masks: torch.Tensor | None, groups: list[Any] | None) -> Batch:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.dtype.is_floating_point:
            raise SaliencyError(f"batch {k}: images must batch to a float (n, C, H, W) tensor, "
                                f"got {getattr(x, 'dtype', type(x).__name__)} of shape "
                                f"{tuple(getattr(x, 'shape', ()))}")
        n = x.shape[0]
        if self.masks is not None:
            masks = self.masks[start:start + n]
        if self._groups is not None:
            groups = self._groups[start:start + n]
        if masks is not None and tuple(masks.shape[1:]) != tuple(x.shape[2:]):
            raise SaliencyError(f"masks have shape {tuple(masks.shape[1:])} but the images "
                                f"{tuple(x.shape[2:])}; give one (H, W) mask per image")
        return Batch(k, start, x, labels, masks, groups)


def _is_demo_sample(data: Any) -> bool:
    """A ``sw.demo.sample(...)`` record, by its fields (the engine does not import demo/)."""
    return all(isinstance(getattr(data, name, None), torch.Tensor)
               for name in ("x", "labels", "masks", "watermarked"))
