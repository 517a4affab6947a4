"""LRP rules for dense layers with a SiLU activation.

Source: the rule definitions in the parity README (shared/parity/README.md), which follow the
reference implementation of Bonneau et al., arXiv 2407.04526 (Nat. Commun. 16, 9898 (2025)),
and the LRP-γ rule of Montavon et al., "Layer-wise relevance propagation: an overview" (2019),
eq. 8. Both rules write the layer output as ``n * stopgrad(y / d)``: gradient×input through
this form gives the rule's relevance redistribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["check_rule", "silu_rule"]

_EPS_Y = 1e-6


def check_rule(gamma: float, bias_rule: bool) -> None:
    """Raise ValueError unless (gamma, bias_rule) is a supported setting: gamma >= 0 with the
    bias rule, or gamma = 0 without it."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if not bias_rule and gamma != 0.0:
        raise ValueError(f"gamma={gamma} without the bias rule is not a supported LRP setting; use bias_rule=True, or gamma=0")


def _safe_ratio(y, d):
    out = torch.zeros_like(y)
    nz = d != 0
    out[nz] = y[nz] / d[nz]
    return out


def silu_rule(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gamma: float, bias_rule: bool) -> torch.Tensor:
    """Rule-modified ``SiLU(a Wᵀ + b)``.

    a (..., n_in); weight (n_out, n_in); bias (n_out,) or None. Returns (..., n_out).

    - ``gamma=0, bias_rule=False``: z = W a + b, output z·stopgrad(SiLU(z)/z); forward unchanged.
    - ``bias_rule=True`` (LRP-γ): for y = SiLU(z) > 1e-6, n = (W+γW⁺)a⁺ + (W+γW⁻)a⁻ + (b+γb⁺),
      d = max((W+γW⁺)a⁺ + (W+γW⁻)a⁻, b+γb⁺); for y < -1e-6 the same with ⁺ and ⁻ of W and b
      swapped and min; |y| <= 1e-6 gives 0. Output n·stopgrad(y/d), with 0/0 read as 0.
    """
    b = bias if bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    z = F.linear(a, weight, b)
    y = F.silu(z)
    if not bias_rule:
        return z * _safe_ratio(y, z).detach()
    wp, wm = weight.clamp(min=0), weight.clamp(max=0)
    bp, bm = b.clamp(min=0), b.clamp(max=0)
    ap, am = a.clamp(min=0), a.clamp(max=0)
    # positive outputs
    xp = F.linear(ap, weight + gamma * wp) + F.linear(am, weight + gamma * wm)
    bpos = b + gamma * bp
    n_pos, d_pos = xp + bpos, torch.maximum(xp, bpos.expand_as(xp))
    # negative outputs
    xm = F.linear(ap, weight + gamma * wm) + F.linear(am, weight + gamma * wp)
    bneg = b + gamma * bm
    n_neg, d_neg = xm + bneg, torch.minimum(xm, bneg.expand_as(xm))
    pos, neg = y > _EPS_Y, y < -_EPS_Y
    n = torch.where(pos, n_pos, torch.where(neg, n_neg, torch.zeros_like(z)))
    d = torch.where(pos, d_pos, torch.where(neg, d_neg, torch.zeros_like(z)))
    yk = torch.where(pos | neg, y, torch.zeros_like(y))
    return n * _safe_ratio(yk, d).detach()
