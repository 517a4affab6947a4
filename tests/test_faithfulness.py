"""The faithfulness yardstick (cgexplain.lrp.faithfulness): its metrics on cases whose answer is
known, and bars that reject what they should reject."""

import numpy as np
import pytest

from cgexplain.lrp.faithfulness import (
    beats_baselines,
    binned_curve,
    curve_metrics,
    item_metrics,
    pair_baselines,
    synthetic_angle_curves,
    triplet_baselines,
)
from cgexplain.reference.potentials import MW


def test_item_metrics_on_known_cases():
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.uniform(0, 0.001, 900), rng.uniform(0.1, 2.0, 100)])
    m = item_metrics(2.0 * t + 0.5, t, threshold=0.1, energy_units=True)
    assert m["n"] == 1000 and m["n_sel"] == 100
    assert m["share_sel"] == pytest.approx(t[100 * 9 :].sum() / t.sum())
    assert m["slope"] == pytest.approx(2.0) and m["intercept"] == pytest.approx(0.5) and m["r2"] == pytest.approx(1.0)
    # a score that ranks the near-zero triplets right and the ones that matter at random
    noise = np.where(t >= 0.1, rng.permutation(t), t)
    m2 = item_metrics(noise, t, threshold=0.1)
    assert m2["spearman"] > 0.8 and abs(m2["spearman_sel"]) < 0.3
    with pytest.raises(ValueError, match="items"):
        item_metrics([1, 2], [1, 2, 3])


def test_angle_curve_bar_rejects_curves_without_the_minimum():
    """The mW vertex function (cos θ − cos θ0)² has its minimum in the 100–110° or 110–120° bin;
    a monotone exp(−θ/20°) and a curve flat beyond 80° do not, and fail the Pearson r beyond 80°
    even where their r over all bins is high."""
    edges = np.arange(50.0, 181.0, 10.0)
    c = 0.5 * (edges[1:] + edges[:-1])
    truth = (np.cos(np.radians(c)) - np.cos(np.radians(109.47))) ** 2
    own = curve_metrics(c, truth, truth)
    assert 100 <= own["min_center"] <= 120 and own["pearson_floor"] == pytest.approx(1.0) and own["amplitude_ratio"] == pytest.approx(1.0)
    for name, curve in synthetic_angle_curves(c).items():
        m = curve_metrics(c, curve, truth)
        assert not 100 <= m["min_center"] <= 120, name
        assert not m["pearson_floor"] >= 0.5, name  # NaN (a flat curve has no r) fails the bar too
        assert not beats_baselines(m["pearson_floor"], {"none": 0.0})["met"], name


def test_binned_curve_leaves_sparse_bins_out():
    x = np.array([0.5] * 30 + [1.5] * 5)
    c, mean, cnt = binned_curve(x, np.ones(35), [0.0, 1.0, 2.0], min_count=20)
    assert np.isfinite(mean[0]) and np.isnan(mean[1]) and list(cnt) == [30, 5]


def test_triplet_baselines_know_no_angle():
    """An equilateral and a collinear-free bent triplet with the same legs at the vertex: the
    radial envelope sees only the legs (Σ over vertices with both legs inside the shell)."""
    mw = MW()
    r = 3.0
    eq = np.array([[0.0, 0, 0], [r, 0, 0], [r / 2, r * np.sqrt(3) / 2, 0]])
    b = triplet_baselines(eq, None, np.array([[0, 1, 2]]), mw.three_body_envelope, shell=mw.cutoff)
    assert b["radial envelope"][0] == pytest.approx(3 * float(mw.three_body_envelope(np.array([r]))[0]) ** 2)
    assert b["shortest legs"][0] == pytest.approx(-2 * r) and b["sum of distances"][0] == pytest.approx(-3 * r)
    assert set(pair_baselines(np.array([3.0]), mw.three_body_envelope)) == {"proximity", "envelope"}


def test_beats_baselines_needs_the_margin():
    assert beats_baselines(0.95, {"a": 0.7, "b": 0.74})["met"]
    res = beats_baselines(0.9, {"a": 0.73, "b": float("nan")})
    assert not res["met"] and res["best_baseline"] == "a"
    assert not beats_baselines(float("nan"), {"a": 0.0})["met"]
    # an anti-correlated baseline ranks as well as a correlated one: it blocks the bar
    res = beats_baselines(0.5, {"proximity": -0.99})
    assert not res["met"] and res["best_value"] == pytest.approx(0.99)
    assert not beats_baselines(0.9, {"a": float("nan")})["met"]  # nothing to beat: not judged


def test_inverted_curve_has_negative_amplitude():
    c = np.arange(55.0, 180.0, 10.0)
    truth = (np.cos(np.radians(c)) - np.cos(np.radians(109.47))) ** 2
    m = curve_metrics(c, -truth, truth)
    assert m["amplitude_ratio"] == pytest.approx(-1.0) and m["pearson_floor"] == pytest.approx(-1.0)
    assert np.isnan(curve_metrics(c, np.full_like(c, 0.3), truth)["pearson"])  # a constant curve has no r
