"""Dataset analyses across processes with ``torch.distributed``.

Every counter of a :class:`~hwcheck.dataset.DatasetAnalysis` is a sum, a max or a list of
per-sample values, so the analysis of a dataset is the merge of its shards' analyses, exactly
(counts are whole numbers summed in float64). Under ``torchrun`` each rank analyses its shard
(map-style data are sharded by :func:`hwcheck.dataset.samples_of`: items ``rank::world``; a
DataLoader should carry a ``DistributedSampler``) and :func:`reduce` gathers the parts with the
process group (``all_gather_object``: gloo on CPU, NCCL on GPU), so every rank returns the whole
dataset's figures; report from rank 0 (:func:`is_main`).

:func:`analyze_local` does the same without torchrun: it spawns local processes on one machine.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["analyze_local", "is_main", "rank_world", "reduce"]


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised default process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (or without a process group): the process that reports."""
    return rank_world()[0] == 0


def reduce(model: Any, graph: Any, result: Any, dist_part: Any, dt: float) -> Any:
    """Gather every rank's part and merge them (in rank order) on every rank."""
    import torch.distributed as dist

    from hwcheck.dataset import DatasetAnalysis

    mine = None
    if result is not None:
        result.dist = dist_part
        mine = result.state()
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, mine)
    if graph is None:
        raise ValueError(f"rank {dist.get_rank()} got no samples: give every rank at least one (fewer ranks or more data)")
    merged = None
    for state in parts:
        if state is None:
            continue
        a = DatasetAnalysis.from_state(graph, state)
        merged = a if merged is None else merged.merge(a)
    return merged


def _worker(rank: int, world: int, store: str, model: Any, data: Any, dt: float, kwargs: dict, out: str) -> None:
    import torch.distributed as dist

    from hwcheck.dataset import analyze_dataset

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        show = kwargs.pop("progress", None)
        a = analyze_dataset(model, data, dt, progress=False if rank else show, **kwargs)
        if rank == 0:
            Path(out).write_bytes(pickle.dumps(a.state()))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def analyze_local(model: Any, data: Any, dt: float, processes: int, **kwargs: Any) -> Any:
    """:func:`~hwcheck.dataset.analyze_dataset` on ``processes`` local CPU processes (gloo),
    each a shard of ``data``; the model and data must be picklable. Returns the merged analysis,
    the same figures as one process on the same data."""
    import torch.multiprocessing as mp

    from hwcheck.dataset import DatasetAnalysis, samples_of
    from hwcheck.graph import LayerGraph

    graph: LayerGraph | None = kwargs.pop("graph", None)
    with tempfile.TemporaryDirectory(prefix="hwcheck-dist-") as tmp:
        store, out = os.path.join(tmp, "store"), os.path.join(tmp, "result.pkl")
        mp.spawn(_worker, args=(processes, store, model, data, dt, kwargs, out), nprocs=processes, join=True)
        state = pickle.loads(Path(out).read_bytes())
    if graph is None:  # the parent's own graph of the model (the children's held their copies)
        from hwcheck.activity import _describe_for

        first, _ = samples_of(data, dt, input_shape=kwargs.get("input_shape"), steps=kwargs.get("steps"))
        x = next(iter(first)).unsqueeze(0)
        graph = _describe_for(model, x, kwargs.get("layout"))
    return DatasetAnalysis.from_state(graph, state)
