"""Spectral relevance analysis (SpRAy; Lapuschkin et al. 2019, "Unmasking Clever Hans
predictors and assessing what machines really learn", Nat. Commun. 10:1096, arXiv:1902.10178).

One class's maps, as ``|m| / Σ|m|`` pooled to a small grid, are the nodes of a symmetric
k-nearest-neighbour graph (Euclidean); the eigenvectors of its normalized Laplacian
``L = I − D^-½ W D^-½`` for the ``k`` smallest eigenvalues embed the maps, rows scaled to unit
length, and k-means groups the rows (Ng, Jordan & Weiss 2001). A large gap after the ``k``-th
eigenvalue says the maps fall into ``k`` well separated strategies: a clever Hans shows up as
a cluster whose mean map sits on the artefact, without any group labels. numpy + scipy only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

_DENSE_UP_TO = 1500  # nodes; above it the sparse Lanczos solver is faster


def knn_affinity(X: np.ndarray, neighbors: int) -> sp.csr_matrix:
    """``W = (A + Aᵀ) / 2`` with ``A[i, j] = 1`` for the ``neighbors`` nearest ``j ≠ i``."""
    n = len(X)
    k = min(neighbors, n - 1)
    sq = (X * X).sum(1)
    rows, cols = [], []
    for i in range(0, n, 512):  # distances in blocks: memory stays O(512 · n)
        d = sq[i:i + 512, None] - 2 * X[i:i + 512] @ X.T + sq[None]
        d[np.arange(d.shape[0]), np.arange(i, i + d.shape[0])] = np.inf  # not its own neighbour
        near = np.argsort(d, axis=1, kind="stable")[:, :k]  # ties: the smaller index
        rows.append(np.repeat(np.arange(i, i + d.shape[0]), k))
        cols.append(near.reshape(-1))
    A = sp.csr_matrix((np.ones(n * k), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n))
    return ((A + A.T) * 0.5).tocsr()


def spectrum(W: sp.csr_matrix, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest eigenvalues of the normalized Laplacian (ascending) and their
    eigenvectors ``(n, count)``."""
    d = np.asarray(W.sum(1)).reshape(-1)
    inv = 1.0 / np.sqrt(d)
    M = sp.diags(inv) @ W @ sp.diags(inv)  # L = I − M: the smallest of L are the largest of M
    n = W.shape[0]
    if n <= _DENSE_UP_TO or count >= n - 1:
        vals, vecs = np.linalg.eigh(M.toarray())
        vals, vecs = vals[::-1][:count], vecs[:, ::-1][:, :count]
    else:
        v0 = np.full(n, 1.0 / np.sqrt(n))  # fixed start vector: reproducible
        vals, vecs = eigsh(M, k=count, which="LA", v0=v0, tol=1e-10)
        order = np.argsort(-vals)
        vals, vecs = vals[order], vecs[:, order]
    return np.clip(1.0 - vals, 0.0, 2.0), vecs


def kmeans(Y: np.ndarray, k: int, rng: np.random.Generator, restarts: int = 10,
           iterations: int = 300) -> np.ndarray:
    """Labels ``(n,)`` of the lowest-inertia Lloyd run over ``restarts`` k-means++ starts."""
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = [Y[rng.integers(len(Y))]]
        for _ in range(1, k):
            d2 = ((Y[:, None] - np.asarray(centres)[None]) ** 2).sum(2).min(1)
            total = d2.sum()
            pick = rng.choice(len(Y), p=d2 / total) if total > 0 else rng.integers(len(Y))
            centres.append(Y[pick])
        C = np.asarray(centres)
        labels = None
        for _ in range(iterations):
            d2 = ((Y[:, None] - C[None]) ** 2).sum(2)
            new = d2.argmin(1)
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if np.any(labels == j):
                    C[j] = Y[labels == j].mean(0)
        inertia = ((Y - C[labels]) ** 2).sum()
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels, inertia
    if best is None:  # no run compared: restarts or iterations below 1, or a non-finite Y
        raise ValueError(f"kmeans found no clustering (restarts={restarts}, "
                         f"iterations={iterations}: both must be ≥ 1; Y must be finite)")
    return best


def canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters by size (largest first; ties: the one holding the smaller index first)."""
    ids = np.unique(labels)
    first = {j: int(np.flatnonzero(labels == j)[0]) for j in ids}
    order = sorted(ids, key=lambda j: (-int((labels == j).sum()), first[j]))
    remap = {j: i for i, j in enumerate(order)}
    return np.array([remap[j] for j in labels], dtype=np.int64)


def spectral_clusters(X: np.ndarray, k: int, *, neighbors: int = 10, seed: int = 0,
                      eigenvalues: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(labels (n,), the smallest eigenvalues of the Laplacian)`` for rows of ``X``."""
    n = len(X)
    W = knn_affinity(np.asarray(X, dtype=np.float64), neighbors)
    count = min(n, max(k, eigenvalues))
    vals, vecs = spectrum(W, count)
    Y = vecs[:, :k]
    Y = Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-300)
    labels = kmeans(Y, k, np.random.default_rng(seed))
    return canonical(labels), vals
