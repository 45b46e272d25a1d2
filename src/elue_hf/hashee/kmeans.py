"""Seeded k-means for the clustered hash (HashEE's "cluster" table): k-means++ seeding, Lloyd iterations, restarts.

Hand-written in torch because no library in the pinned stack offers k-means (scikit-learn and SciPy are not
dependencies); docs/hashee.md, "Clustered hash", compares its tables with scikit-learn's.
"""

from __future__ import annotations

import math

import torch

__all__ = ["kmeans"]


def _squared_distances(x: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return (x_sq[:, None] - 2.0 * (x @ centers.T) + (centers * centers).sum(1)[None, :]).clamp_min_(0.0)


def _kmeans_plus_plus(x: torch.Tensor, x_sq: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (2 + ln k candidate draws per centre, the best kept)."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [x[first]]
    closest = _squared_distances(x, x_sq, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        total = float(closest.sum())
        if total <= 0:  # fewer distinct points than clusters
            candidates = torch.randint(n, (trials,), generator=generator)
        else:
            candidates = torch.multinomial(closest.double() / total, trials, replacement=True, generator=generator)
        candidate_d = torch.minimum(closest[None, :], _squared_distances(x, x_sq, x[candidates]).T)
        best = int(candidate_d.sum(1).argmin())
        centers.append(x[candidates[best]])
        closest = candidate_d[best]
    return torch.stack(centers)


def _lloyd(x, x_sq, centers, max_iter, tolerance):
    k = centers.shape[0]
    for _ in range(max_iter):
        distances = _squared_distances(x, x_sq, centers)
        labels = distances.argmin(1)
        sizes = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        new_centers = sums / sizes.clamp_min(1)[:, None].to(x.dtype)
        empty = torch.nonzero(sizes == 0).flatten()
        if empty.numel():  # re-seed empty clusters at the points farthest from their centres
            far = distances.gather(1, labels[:, None])[:, 0].argsort(descending=True)[: empty.numel()]
            new_centers[empty] = x[far]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if shift <= tolerance:
            break
    distances = _squared_distances(x, x_sq, centers)
    best, labels = distances.min(1)
    return labels, centers, float(best.double().sum())


def kmeans(
    x: torch.Tensor, k: int, *, n_init: int = 40, max_iter: int = 300, tol: float = 1e-4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Seeded k-means (k-means++ init, ``n_init`` restarts, best inertia kept). Returns labels, centres, inertia.

    ``tol`` is relative to the mean per-feature variance, as in scikit-learn.
    """
    if x.dim() != 2:
        raise ValueError(f"k-means needs a 2-D matrix, got shape {tuple(x.shape)}")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be between 1 and the number of rows ({x.shape[0]}), got {k}")
    if n_init < 1 or max_iter < 1:
        raise ValueError("n_init and max_iter must be >= 1")
    x = x.detach().to("cpu", torch.float32)
    x = x - x.mean(0, keepdim=True)  # centring does not move the clusters but improves the distance arithmetic
    x_sq = (x * x).sum(1)
    tolerance = tol * float(x.var(0, unbiased=False).mean())
    generator = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(n_init):
        centers = _kmeans_plus_plus(x, x_sq, k, generator)
        result = _lloyd(x, x_sq, centers, max_iter, tolerance)
        if best is None or result[2] < best[2]:
            best = result
    return best
