"""What the multi-rank (gloo) tests share: a free rendezvous port, and ``run_ranks``, which runs one function on
each rank of a fresh gloo process group."""

import os
import socket
import sys


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, fn, world_size: int, port: int, args: tuple) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    fn(rank, world_size, *args)  # an exception goes to torch.multiprocessing, which names the rank and fails
    # Every rank's checks passed. Wait for the others, then leave without tearing gloo down: destroying the group,
    # or the interpreter's exit with its threads alive, now and then aborts a rank ("terminate called without an
    # active exception", SIGABRT) after all its work succeeded, which would fail a test that passed.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_ranks(fn, world_size: int, *args) -> None:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` spawned processes joined in one gloo process group;
    raises if any rank raises or dies. ``fn`` must be a module-level function (it is pickled by name)."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(fn, world_size, free_port(), args), nprocs=world_size, join=True)
