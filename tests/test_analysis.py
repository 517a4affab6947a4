import itertools

import numpy as np

from cgexplain.analysis.structure import adf, angle_triplets, compare_structure, first_peak, rdf


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


def test_tetrahedral_order_exact_cases():
    """q = 1 on a diamond lattice (every site tetrahedral), q invariant under rotation and
    translation, and q of an ideal gas averages 0 (Errington & Debenedetti)."""
    import numpy as np

    from cgexplain.analysis.structure import q_distribution, tetrahedral_order

    a = 5.0
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    basis = np.concatenate([fcc, fcc + 0.25])
    cells = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)])
    x = ((cells[:, None, :] + basis[None]) * a).reshape(-1, 3)
    cell = np.eye(3) * 3 * a
    np.testing.assert_allclose(tetrahedral_order(x, cell), 1.0, atol=1e-12)
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 12, (60, 3))
    q0 = tetrahedral_order(y, np.eye(3) * 12)
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q1 = tetrahedral_order((y + 3.3) @ rot.T, np.eye(3) * 12 @ rot.T)
    np.testing.assert_allclose(q0, q1, atol=1e-10)
    gas = rng.uniform(0, 20, (40, 400, 3))
    _, p, mean = q_distribution(gas, np.repeat(np.eye(3)[None] * 20, 40, axis=0))
    assert abs(mean) < 0.02
    assert abs(p.sum() * (2.0 / 60) - 1) < 0.05
