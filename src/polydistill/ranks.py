"""Which process of a distributed launch (torchrun / accelerate) this is, and a barrier.

Only the main process writes outputs, results and logs and prints; the others wait at barriers.
Read from the launcher's environment (``RANK``, ``WORLD_SIZE``), so it works before any process
group exists; the barrier goes through accelerate's ``PartialState`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def barrier() -> None:
    """Wait until every process gets here (a no-op in a single process)."""
    if world_size() > 1:
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available()).wait_for_everyone()
