"""Shapley values of segments for every class from one set of coalitions.

A coalition is a set of segments kept from the image, the others replaced by the
baseline: Captum's construction (``current * (1 - mask) + input * mask``) yields exactly
the input's or the baseline's value at each pixel, so a coalition's image is the same
tensor however it was built, and its scores (every class's, from one forward pass) serve
every permutation and every class that meets it.

* Exact (Captum's ``ShapleyValues``, which walks all S! permutations): every one of the
  2^S coalitions is evaluated once (the full one is the image, whose scores the
  prediction already has), and each segment's value is the classical weighted sum
  ``sum_K |K|! (S - |K| - 1)! / S! (v(K + i) - v(K))`` in float64. The pairwise Shapley
  interaction index (Grabisch and Roubens, 1999) comes from the same table.
* Sampled (Captum's ``ShapleyValueSampling``): the same permutations as Captum draws
  (``torch.randperm(S)`` after ``torch.manual_seed(seed)``, on a forked RNG so the
  process's own stream is untouched); each distinct prefix coalition is evaluated once,
  and the differences are accumulated in float32 in Captum's order, so the numbers are
  Captum's.

The players are the segments numbered by row (ascending segment id): Captum's
``feature_mask`` for the same call is ``Segments.rows_map()``.
"""

from __future__ import annotations

from math import factorial

import numpy as np
import torch

from .aggregation import Aggregation
from .jobs import JobState
from .methods import describe_progress
from .results import ShapleyTable
from .segments import Segments
from .session import Session


def permutations(count: int, n_samples: int, seed: int) -> list[list[int]]:
    """The permutations ShapleyValueSampling draws after ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [torch.randperm(count).tolist() for _ in range(n_samples)]


def _popcount(values: np.ndarray) -> np.ndarray:
    counts = np.zeros(values.shape, dtype=np.int64)
    v = values.copy()
    while np.any(v):
        counts += v & 1
        v >>= 1
    return counts


def exact_values(table: np.ndarray, players: int) -> np.ndarray:
    """S x C Shapley values from the 2^S x C coalition table (row = bitmask of kept)."""
    n = players
    masks = np.arange(2 ** n, dtype=np.int64)
    sizes = _popcount(masks)
    weight = np.array([factorial(k) * factorial(n - k - 1) / factorial(n) if k < n else 0.0
                       for k in range(n + 1)])
    values = np.zeros((n, table.shape[1]), dtype=np.float64)
    t = table.astype(np.float64)
    for i in range(n):
        bit = 1 << i
        without = masks[(masks & bit) == 0]
        values[i] = (weight[sizes[without]][:, None] * (t[without | bit] - t[without])).sum(0)
    return values


def exact_interactions(table: np.ndarray, players: int) -> np.ndarray:
    """S x S x C pairwise Shapley interaction index from the coalition table:
    ``sum_K |K|! (S - |K| - 2)! / (S - 1)! (v(K+i+j) - v(K+i) - v(K+j) + v(K))``."""
    n = players
    out = np.zeros((n, n, table.shape[1]), dtype=np.float64)
    if n < 2:
        return out
    masks = np.arange(2 ** n, dtype=np.int64)
    sizes = _popcount(masks)
    weight = np.array([factorial(k) * factorial(n - k - 2) / factorial(n - 1)
                       if k <= n - 2 else 0.0 for k in range(n + 1)])
    t = table.astype(np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            bi, bj = 1 << i, 1 << j
            rest = masks[(masks & (bi | bj)) == 0]
            delta = t[rest | bi | bj] - t[rest | bi] - t[rest | bj] + t[rest]
            out[i, j] = out[j, i] = (weight[sizes[rest]][:, None] * delta).sum(0)
    return out


def shapley_table(session: Session, segments: Segments, *, exact: bool,
                  baseline: str = "zero", aggregation: Aggregation | None = None,
                  n_samples: int = 25, seed: int = 0,
                  state: JobState | None = None) -> ShapleyTable:
    """Shapley values of ``segments`` for every class (see the module's docstring)."""
    agg = aggregation or Aggregation()
    n = segments.count
    full_mask = (1 << n) - 1
    full = session.scores(agg).astype(np.float32)  # the image: the prediction's scores
    perms: list[list[int]] = []
    if exact:
        wanted = list(range(full_mask))  # every coalition but the full one
    else:
        perms = permutations(n, n_samples, seed)
        seen: dict[int, None] = {0: None}
        for perm in perms:
            mask = 0
            for player in perm:
                mask |= 1 << player
                if mask != full_mask:
                    seen.setdefault(mask, None)
        wanted = list(seen)
    device = session.model.device
    rows = torch.as_tensor(segments.rows_map(), device=device)
    base = torch.zeros_like(session.input) + session.baseline_value(baseline)
    players = torch.arange(n, device=device)

    def batch(first: int, count: int) -> torch.Tensor:
        masks = torch.as_tensor(wanted[first:first + count], device=device).view(-1, 1)
        kept = ((masks >> players) & 1).bool()  # k x S
        keep = kept[:, rows].unsqueeze(1)  # k x 1 x H x W
        return torch.where(keep, session.input, base)

    label = "exact" if exact else "sampled"
    evaluated = session.evaluate(
        len(wanted), batch, aggregation=agg, state=state, what="coalition",
        describe=lambda done, total: describe_progress(f"Shapley ({label})", done, total,
                                                       "coalitions"))
    scores: dict[int, np.ndarray] = dict(zip(wanted, evaluated.scores))
    scores[full_mask] = full
    if exact:
        table = np.stack([scores[m] for m in range(full_mask + 1)])
        values = exact_values(table, n).astype(np.float32)
        interactions = exact_interactions(table, n).astype(np.float32)
    else:
        # Captum's accumulation: float32 differences of consecutive prefixes, summed in
        # permutation order, divided by the number of permutations
        total = torch.zeros((n, len(full)), dtype=torch.float32)
        for perm in perms:
            mask = 0
            prev = torch.from_numpy(scores[0])
            for player in perm:
                mask |= 1 << player
                cur = torch.from_numpy(scores[mask])
                total[player] += cur - prev
                prev = cur
        values = (total / len(perms)).numpy()
        interactions = None
    return ShapleyTable(
        segments=segments, exact=exact, values=values, coalitions=len(wanted) + 1,
        n_samples=0 if exact else n_samples, seed=seed, interactions=interactions,
        empty_scores=scores[0].copy(), full_scores=full)
