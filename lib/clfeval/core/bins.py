"""Fixed score-bin layouts.

A layout is a strictly increasing array of edges ``E`` with ``E[0] = 0`` and
``E[-1] = 1``. Bin ``i`` holds the scores ``E[i] <= s < E[i+1]``; the last bin
holds ``s >= E[-1]``, i.e. scores of exactly 1. So ``bin(s) = #{E <= s} - 1``
(``numpy.searchsorted(E, s, side="right") - 1``).

With the convention *predicted positive iff score >= threshold*, a threshold
that is an edge ``E[j]`` splits the bins exactly: bins ``>= j`` are predicted
positive. Operating thresholds are therefore always inserted as edges.

Edges never depend on data, so histograms from different days, partitions and
runs add up. The edges are made of

* a *grid*: equally spaced points in a transformed space (``logit`` or
  ``identity``), which lets Spark compute a bin with arithmetic plus a one-step
  correction instead of a search, and
* *extra edges*: 0, 1 and the operating thresholds that are not grid points.

Why logit by default: imbalanced models crowd scores near 0. Uniform bins on
[0, 1] put almost every negative and many positives into the first bin, which
makes the binned AUC useless; logit-spaced edges are dense near 0 and 1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

TRANSFORMS = ("logit", "identity")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class BinLayout:
    """A fixed set of bin edges plus the grid description Spark uses to bucket.

    Attributes:
        transform: ``"logit"`` (grid equally spaced in ``log(s / (1 - s))``)
            or ``"identity"`` (equally spaced in ``s``).
        grid_start: transformed value of the first grid edge.
        grid_step: spacing of grid edges in the transformed space.
        grid_edges: the grid edges mapped back to score space.
        extra_edges: edges that are not grid edges (0, 1, thresholds).
        edges: all edges, sorted: ``grid_edges`` union ``extra_edges``.
    """

    transform: str
    grid_start: float
    grid_step: float
    grid_edges: np.ndarray = field(repr=False)
    extra_edges: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)

    @property
    def n_bins(self) -> int:
        return int(self.edges.size)

    @property
    def lower(self) -> np.ndarray:
        """Lower edge of each bin (the threshold at which the bin turns positive)."""
        return self.edges

    @property
    def upper(self) -> np.ndarray:
        """Upper edge of each bin; the last bin (scores == 1) has upper edge 1."""
        return np.append(self.edges[1:], self.edges[-1])

    @property
    def layout_id(self) -> str:
        """Short fingerprint of the edges; states may only be added when it matches."""
        digest = hashlib.sha256(np.ascontiguousarray(self.edges, dtype=np.float64).tobytes())
        return f"{self.transform}-{self.n_bins}-{digest.hexdigest()[:12]}"

    def bin_index(self, scores: np.ndarray) -> np.ndarray:
        """Bin of each score in [0, 1]: ``#{E <= s} - 1``."""
        return np.searchsorted(self.edges, np.asarray(scores, dtype=np.float64), side="right") - 1

    def edge_index(self, threshold: float) -> int:
        """Index ``j`` with ``E[j] == threshold``; raises if the threshold is not an edge."""
        j = int(np.searchsorted(self.edges, threshold, side="left"))
        if j >= self.n_bins or self.edges[j] != threshold:
            raise ValueError(f"threshold {threshold!r} is not an edge of layout {self.layout_id}")
        return j


def make_layout(
    transform: str,
    grid_cells: int,
    grid_min: float,
    grid_max: float,
    thresholds: tuple[float, ...] = (),
) -> BinLayout:
    """Build a layout from a grid of ``grid_cells`` equal steps on [grid_min, grid_max].

    For ``transform="logit"`` the grid bounds are logits (e.g. -12 .. 12, that is
    scores from 6.1e-6 to 1 - 6.1e-6); for ``"identity"`` they are scores in [0, 1].
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; expected one of {TRANSFORMS}")
    if grid_cells < 1:
        raise ValueError("grid_cells must be >= 1")
    if not grid_min < grid_max:
        raise ValueError("grid_min must be < grid_max")
    step = (grid_max - grid_min) / grid_cells
    z = grid_min + step * np.arange(grid_cells + 1, dtype=np.float64)
    grid = _sigmoid(z) if transform == "logit" else z
    grid = np.unique(grid[(grid >= 0.0) & (grid <= 1.0)])
    wanted = np.unique(np.concatenate([[0.0, 1.0], np.asarray(thresholds, dtype=np.float64)]))
    if wanted.size and (wanted.min() < 0.0 or wanted.max() > 1.0):
        raise ValueError("thresholds must lie in [0, 1]")
    extra = np.setdiff1d(wanted, grid)
    edges = np.union1d(grid, extra)
    return BinLayout(
        transform=transform,
        grid_start=float(grid_min),
        grid_step=float(step),
        grid_edges=grid,
        extra_edges=extra,
        edges=edges,
    )
