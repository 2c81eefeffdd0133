"""Several processes for one fine-tuning run: DistributedDataParallel with gloo (CPU) or nccl (CUDA).

Two ways in:
  * `dainctl finetune ... --nproc N`: this machine, N processes started here (`spawn`), rendezvous on a
    free local port; on CUDA process i uses GPU i.
  * `torchrun --nproc-per-node N [--nnodes M ...] -m dainctl finetune ...`: torchrun's environment
    (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) is read by `from_torchrun()`.
The helpers below are no-ops in a single process, so the training loop calls them unconditionally.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int


def from_torchrun() -> Rank | None:
    """The rank torchrun gave this process, or None outside torchrun (or with one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ["RANK"]) if world > 1 else 0
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        return None
    return Rank(rank, world, local_rank) if world > 1 else None


def backend_for(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def init(rank: Rank, device_type: str, address: str | None = None) -> None:
    """Join the process group (env:// under torchrun, else `address` such as tcp://127.0.0.1:PORT)."""
    if device_type == "cuda":
        torch.cuda.set_device(rank.local_rank)
    dist.init_process_group(backend_for(device_type), init_method=address or "env://", rank=rank.rank,
                            world_size=rank.world, timeout=TIMEOUT)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _reduce_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over all processes (the tensor itself in a single process)."""
    if not _active():
        return tensor
    work = tensor.detach().to(_reduce_device(), copy=True)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def any_flag(flag: bool) -> bool:
    """True on every process when any process passes True."""
    return bool(all_reduce_sum(torch.tensor([1.0 if flag else 0.0], dtype=torch.float64))[0] > 0)


def barrier() -> None:
    if _active():
        dist.barrier()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(count: int, worker: Callable, args: tuple) -> None:
    """Run `worker(index, address, *args)` in `count` new processes and wait for all of them. Ctrl-C and
    SIGTERM reaching this process are passed on to the workers (which save a checkpoint and stop)."""
    import torch.multiprocessing as mp

    address = f"tcp://127.0.0.1:{free_port()}"
    context = mp.start_processes(worker, args=(address, *args), nprocs=count, join=False, start_method="spawn")

    def forward(signum, frame):
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not context.join(timeout=0.5):
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
