"""Bin layouts and slice encoding (no Spark)."""

from __future__ import annotations

import numpy as np
import pytest

from clfeval.core import slices
from clfeval.core.bins import make_layout


def test_thresholds_are_edges_and_bins_follow_the_threshold_convention() -> None:
    layout = make_layout("logit", 100, -10.0, 10.0, (0.123, 0.5))
    for t in (0.123, 0.5, 0.0, 1.0):
        j = layout.edge_index(t)
        assert layout.edges[j] == t
        # score == threshold is predicted positive: it falls in the bin starting at t
        assert layout.bin_index(np.array([t]))[0] == j
        if j > 0:
            assert layout.bin_index(np.array([np.nextafter(t, 0)]))[0] == j - 1
    assert np.all(np.diff(layout.edges) > 0)
    assert layout.edges[0] == 0.0 and layout.edges[-1] == 1.0


def test_logit_layout_is_dense_near_zero_unlike_uniform() -> None:
    logit = make_layout("logit", 1000, -12.0, 12.0)
    uniform = make_layout("identity", 1000, 0.0, 1.0)
    assert np.sum(logit.edges < 0.01) > 200
    assert np.sum(uniform.edges < 0.01) <= 11


def test_layout_id_changes_with_edges() -> None:
    a = make_layout("logit", 100, -10.0, 10.0, (0.5,))
    b = make_layout("logit", 100, -10.0, 10.0, (0.3,))
    assert a.layout_id != b.layout_id
    assert a.layout_id == make_layout("logit", 100, -10.0, 10.0, (0.5,)).layout_id


def test_threshold_outside_unit_interval_rejected() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        make_layout("logit", 100, -10.0, 10.0, (1.5,))


@pytest.mark.parametrize(
    "values",
    [["EU", "mobile"], ["a,b", "c\\d"], [None, "N"], ["\\N"], [""], ["", ""], [None], ["x'y\"z"]],
)
def test_slice_values_round_trip(values: list) -> None:
    key = ",".join(f"c{i}" for i in range(len(values)))
    encoded = slices.join_values(values)
    assert slices.decode(key, encoded) == {
        f"c{i}": (None if v is None else str(v)) for i, v in enumerate(values)
    }


def test_commas_in_values_do_not_collide() -> None:
    assert slices.join_values(["a,b", "c"]) != slices.join_values(["a", "b,c"])
    assert slices.decode("", "") == {}
