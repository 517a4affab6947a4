"""Spread the frames of an explanation over several processes.

Two ways, both through the per-frame files (``frame_XXXX.npz``) that make a run resumable:

- local workers: :func:`run_workers` starts N processes (``torch.multiprocessing``, spawn), each
  loading the model folder itself (state_dict + JSON) with ``cores / N`` torch threads and
  computing frames ``k ≡ w (mod N)``; the parent waits for them and then aggregates;
- launcher ranks (torchrun, srun; :func:`cgexplain.distributed.launcher_ranks`): each rank
  computes frames ``k ≡ rank (mod world_size)``; rank 0 then waits for every frame file and
  aggregates. A rank that fails leaves ``failed_rank_XXXX.txt`` so rank 0 stops waiting.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path

__all__ = ["share", "run_workers", "rank_device", "failure_marker", "wait_for_frames"]


def share(n_frames: int, rank: int, world_size: int) -> list[int]:
    """Frame positions ``rank, rank + world_size, ...`` below ``n_frames``.
    Raises ValueError unless 0 <= rank < world_size."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    return list(range(rank, n_frames, world_size))


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


def failure_marker(out_dir, rank: int) -> Path:
    return Path(out_dir) / f"failed_rank_{rank:04d}.txt"


def _worker(w, n_workers, threads, model_dir, device, compute_frames, args, kwargs):
    import torch

    from cgexplain.model.potential import load_model

    torch.set_num_threads(threads)
    model, _ = load_model(model_dir)
    model = model.to(rank_device(device, w))
    frames = args[0]
    compute_frames(model, *args, ks=share(len(frames), w, n_workers), **kwargs)


def run_workers(n_workers: int, model_dir, device, compute_frames, args: tuple, kwargs: dict) -> None:
    """Run ``compute_frames`` (:func:`cgexplain.lrp.statistics.compute_frames`, passed in so that this
    module does not import the statistics that use it) over ``n_workers`` spawned processes,
    worker w taking frames w, w + N, ...; each loads ``model_dir`` and uses cores // N torch
    threads (at least 1). Returns when all have finished; a worker's exception is raised here
    (torch.multiprocessing.ProcessRaisedException, with the worker's traceback)."""
    import torch.multiprocessing as mp

    from cgexplain.distributed import cpu_count

    threads = max(1, cpu_count() // n_workers)
    mp.start_processes(_worker, args=(n_workers, threads, str(model_dir), device, compute_frames, args, kwargs), nprocs=n_workers,
                       join=True, start_method="spawn")


def wait_for_frames(done, out_dir, world_size: int, since: float, poll_s: float = 2.0, timeout_s: float | None = None) -> None:
    """Rank 0: wait until ``done()`` (every frame file written); raise RuntimeError if another rank
    left a failure marker newer than ``since`` (time.time())."""
    from cgexplain.distributed import wait_for

    def failed():
        for r in range(1, world_size):
            p = failure_marker(out_dir, r)
            if p.exists() and p.stat().st_mtime >= since:
                return f"rank {r} failed: {p.read_text()[-2000:]}"
        return None

    wait_for(done, f"the frame files of {world_size} ranks in {out_dir}", poll_s=poll_s, timeout_s=timeout_s, failed=failed)


def record_failure(out_dir, rank: int) -> None:
    """Write this rank's failure marker (the current exception's traceback)."""
    from cgexplain.fileio import atomic_path

    with atomic_path(failure_marker(out_dir, rank)) as tmp:
        tmp.write_text(f"{time.ctime()}\n{traceback.format_exc()}")
