"""Which process am I: ranks from torchrun, SLURM's srun or Lightning's DDP launcher.

cgexplain does not start process groups itself: Lightning does for training (DDP), and the
explain stage spreads frames through MDAnalysis's parallel backends
(:mod:`cgexplain.lrp.frames`). This module only reads the launchers' environment variables
(so that the other DDP processes skip the single-process stages), waits for files, and picks
a process's device.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Ranks", "launcher_ranks", "is_main_process", "wait_for", "cpu_count", "rank_device"]


class Ranks(NamedTuple):
    """rank (global, 0..world_size-1), world_size, local_rank (on this node)."""

    rank: int
    world_size: int
    local_rank: int


def launcher_ranks(environ=None) -> Ranks | None:
    """Ranks of a process started by an external launcher, or None.

    torchrun (and ``torch.distributed.launch``): RANK, WORLD_SIZE, LOCAL_RANK. SLURM ``srun``:
    SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID (the step's tasks, so a command run once
    in a batch script, outside srun, is not taken for a rank). Otherwise LOCAL_RANK with
    LOCAL_WORLD_SIZE (one node). Lightning's own DDP launcher sets neither RANK nor
    LOCAL_WORLD_SIZE, so the processes it starts for training are not taken for launcher ranks.
    Raises ValueError naming the variable whose value is not an integer or out of range.
    """
    env = os.environ if environ is None else environ
    for r, w, lr in (
        ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
        ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"),
        ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "LOCAL_RANK"),
    ):
        if r in env and w in env:
            try:
                rank, world, local = int(env[r]), int(env[w]), int(env.get(lr, env[r]))
            except ValueError as e:
                raise ValueError(f"environment: {r}={env[r]!r}, {w}={env[w]!r} must be integers") from e
            if not 0 <= rank < world:
                raise ValueError(f"environment: {r}={rank} outside 0..{world - 1} ({w}={world})")
            return Ranks(rank, world, local)
    return None


def is_main_process(environ=None) -> bool:
    """False in a process that an external launcher (see :func:`launcher_ranks`) gave a rank > 0,
    or that Lightning's DDP launcher started (NODE_RANK or LOCAL_RANK > 0); True otherwise."""
    env = os.environ if environ is None else environ
    ranks = launcher_ranks(env)
    if ranks is not None:
        return ranks.rank == 0
    return int(env.get("NODE_RANK", 0) or 0) == 0 and int(env.get("LOCAL_RANK", 0) or 0) == 0


def wait_for(
    ready: Callable[[], bool], what: str, poll_s: float = 2.0, timeout_s: float | None = None, failed: Callable[[], str | None] | None = None
) -> None:
    """Poll ``ready()`` every ``poll_s`` seconds until it is True.

    ``failed()`` (optional) returns an error message once another process has failed. Raises
    RuntimeError with that message, or TimeoutError naming ``what`` after ``timeout_s`` seconds.
    """
    t0 = time.monotonic()
    while not ready():
        msg = failed() if failed is not None else None
        if msg:
            raise RuntimeError(f"waiting for {what}: {msg}")
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(poll_s)


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def rank_device(device: str | None, local_index: int) -> str:
    """``device`` for one process: None -> 'cpu'; 'cuda' (no index) -> 'cuda:<local_index mod
    the visible GPUs>'; anything else as given ('cpu', 'cuda:1'). Raises RuntimeError for
    'cuda' without a visible GPU."""
    if device is None:
        return "cpu"
    if device == "cuda":
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            raise RuntimeError("device 'cuda' requested but no GPU is visible")
        return f"cuda:{local_index % n}"
    return device
