"""Does the network improve on its prior? The verdict per observable, and the standard errors it
rests on.

A CG ensemble (the model's, or the prior-only control's) is compared with the reference by a
distance per observable (a Jensen–Shannon distance, |Δp| of a population, ...; smaller is
better). Its standard error comes from a jackknife over blocks of the CG frames (whole replicas,
or pieces of them: replicas are independent, frames within one are not). The verdict compares
the model's distance with the prior-only control's (:func:`verdict`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["VERDICTS", "UNDETERMINED", "verdict", "frame_blocks", "jackknife", "matched_rows", "verdict_rows", "format_verdicts"]

#: the three verdicts of :func:`verdict`, and the answer without an error estimate
VERDICTS = ("improves on the prior", "no improvement", "worse than the prior")
UNDETERMINED = "undetermined (no error estimate: too few CG blocks)"


def verdict(d_model: float, se_model: float, d_prior: float, se_prior: float, z: float = 3.0) -> str:
    """Does the network improve on its prior for one observable? ``d_*``: distances of the
    model's and the prior-only ensemble from the reference (smaller is better), ``se_*`` their
    standard errors (NaN: :data:`UNDETERMINED`). "improves on the prior" when d_prior − d_model > z·σ,
    "worse than the prior" when it is < −z·σ, else "no improvement" (σ = √(se_model² + se_prior²)).
    z = 3 (not 2): a table holds a dozen observables or more, and at z = 2 one of them would
    cross by chance about every third table."""
    if not (np.isfinite(se_model) and np.isfinite(se_prior)):
        return UNDETERMINED
    s = float(np.sqrt(se_model**2 + se_prior**2))
    diff = float(d_prior) - float(d_model)
    if diff > z * s:
        return VERDICTS[0]
    if diff < -z * s:
        return VERDICTS[2]
    return VERDICTS[1]


def frame_blocks(lengths: list[int], min_blocks: int) -> list[np.ndarray]:
    """Contiguous blocks of frame indices of replicas of ``lengths`` frames (in order): each
    replica split into equal pieces, so that there are at least ``min_blocks`` blocks in all."""
    per = max(1, -(-int(min_blocks) // max(1, len(lengths))))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    out = []
    for s, n in zip(starts, lengths):
        out += [b for b in np.array_split(np.arange(s, s + int(n)), per) if len(b)]
    return out


def jackknife(fn: Callable[[np.ndarray], dict[str, float]], lengths: list[int], min_blocks: int = 8) -> tuple[dict[str, float], dict[str, float]]:
    """``fn(rows)`` (distances of the CG frames ``rows``) on all frames, and its jackknife standard
    error per key over :func:`frame_blocks`: se² = (B−1)/B Σ_b (d_(−b) − mean)². NaN with fewer
    than 2 blocks. Returns (values, standard errors)."""
    n = int(sum(lengths))
    full = fn(np.arange(n))
    blocks = frame_blocks(list(lengths), min_blocks)
    if len(blocks) < 2:
        return full, {k: float("nan") for k in full}
    loo = [fn(np.setdiff1d(np.arange(n), b, assume_unique=True)) for b in blocks]
    B = len(blocks)
    se = {}
    for key in full:
        v = np.array([d[key] for d in loo], dtype=float)
        se[key] = float(np.sqrt((B - 1) / B * np.sum((v - v.mean()) ** 2)))
    return full, se


def matched_rows(model_lengths: list[int], n_prior: int) -> tuple[np.ndarray, list[int]]:
    """The first frames of the model's replicas (in order) up to the prior-only control's frame
    count ``n_prior``, so both ensembles carry the same finite-sample bias in a verdict. Returns
    (frame indices, their replica lengths)."""
    cut, acc = [], 0
    for n_r in model_lengths:
        take = min(int(n_r), n_prior - acc)
        if take <= 0:
            break
        cut.append(take)
        acc += take
    starts = np.concatenate([[0], np.cumsum(model_lengths)[:-1]]).astype(int)
    return np.concatenate([np.arange(s, s + c) for s, c in zip(starts, cut)]).astype(int), cut


def verdict_rows(
    distance: Callable[[str, np.ndarray], dict[str, float]],
    noise: dict[str, float],
    model_lengths: list[int],
    prior_lengths: list[int] | None,
    min_blocks: int = 8,
) -> list[dict]:
    """The analyse stage's table: for every observable, the reference's own noise (``noise``), the
    model's and the prior-only control's distances from the reference with jackknife errors, and
    the verdict (on the model's first frames matching the control's count, :func:`matched_rows`,
    reported as ``model_matched`` ± ``model_matched_se``).

    distance(ensemble, rows): distances {observable: value} of the frames ``rows`` of ensemble
    "model" or "prior". Returns [{name, reference_noise, model, model_se, prior, prior_se, verdict}];
    without a control (``prior_lengths`` None) the verdict is "no prior-only control"."""
    d_m, se_m = jackknife(lambda r: distance("model", r), model_lengths, min_blocks)
    rows = []
    if prior_lengths:
        d_p, se_p = jackknife(lambda r: distance("prior", r), prior_lengths, min_blocks)
        sub, cut = matched_rows(model_lengths, int(sum(prior_lengths)))
        d_v, se_v = (d_m, se_m) if len(sub) == sum(model_lengths) else jackknife(lambda r: distance("model", sub[r]), cut, min_blocks)
    for key in d_m:
        row = {"name": key, "reference_noise": noise.get(key), "model": d_m[key], "model_se": se_m[key]}
        if prior_lengths:
            row.update(
                prior=d_p[key],
                prior_se=se_p[key],
                # what the verdict compares: the model's frames matched to the control's count
                model_matched=d_v[key],
                model_matched_se=se_v[key],
                verdict=verdict(d_v[key], se_v[key], d_p[key], se_p[key]),
            )
        else:
            row.update(prior=None, prior_se=None, verdict="no prior-only control")
        rows.append(row)
    return rows


def format_verdicts(rows: list[dict]) -> list[str]:
    """One line per row of :func:`verdict_rows`: the distances of the model and of the prior-only
    control from the reference (± jackknife error), the reference's own noise and the verdict."""
    lines = []
    for r in rows:
        prior = "prior n/a" if r.get("prior") is None else f"prior {r['prior']:.3f}±{r['prior_se']:.3f}"
        if r.get("model_matched") is not None and r["model_matched"] != r["model"]:
            prior += f" (model on as many frames {r['model_matched']:.3f}±{r['model_matched_se']:.3f})"
        noise = "n/a" if r.get("reference_noise") is None else f"{r['reference_noise']:.3f}"
        lines.append(f"{r['name']:<28s} model {r['model']:.3f}±{r['model_se']:.3f}  {prior}  noise {noise}  -> {r['verdict']}")
    return lines
