import itertools

import numpy as np

from cgexplain.analysis import adf, angle_triplets, compare_structure, first_peak, rdf


def test_rdf_ideal_gas_is_one():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 20, (40, 200, 3))
    cells = np.repeat(np.eye(3)[None] * 20, 40, 0)
    r, g = rdf(pos, cells, r_max=9.0, n_bins=30)
    assert abs(g[5:].mean() - 1.0) < 0.03


def test_angle_triplets_brute_force():
    rng = np.random.default_rng(1)
    L = 6.0
    x = rng.uniform(0, L, (25, 3))
    cell = np.eye(3) * L
    c, j, k, th = angle_triplets(x, cell, 2.5)
    ref = []
    for i in range(len(x)):
        nb = []
        for jj in range(len(x)):
            if jj == i:
                continue
            d = x[jj] - x[i]
            d -= L * np.round(d / L)
            if np.linalg.norm(d) < 2.5:
                nb.append(d)
        for a, b in itertools.combinations(nb, 2):
            ref.append(np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))))
    np.testing.assert_allclose(np.sort(th), np.sort(ref), atol=1e-6)


def test_adf_normalised_and_first_peak():
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 8, (3, 60, 3))
    cells = np.repeat(np.eye(3)[None] * 8, 3, 0)
    th, p, nn = adf(pos, cells, 3.0, n_bins=45)
    assert abs(p.sum() * (th[1] - th[0]) - 1.0) < 1e-9 and nn > 0
    r = np.linspace(0, 5, 101)
    g = 3 - (r - 2.83) ** 2
    pk, h = first_peak(r, g)
    assert abs(pk - 2.83) < 1e-9 and abs(h - 3) < 1e-9
    s = compare_structure({"r": r, "g": g, "theta": th, "p": p}, {"r": r, "g": g, "theta": th, "p": p})
    assert s["rdf_max_abs_diff"] == 0 and s["adf_js_distance"] < 1e-6
