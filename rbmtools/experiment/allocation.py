"""Which arm each message of a batch goes to, once arms can be dropped between batches.

A stopping experiment sends in batches and looks after each; the next batch is split evenly
among the arms still running (counts differ by at most one), in an order drawn from the seed and
the batch's number, so a run, its resume and a simulation of it assign the same recipients to
the same arms whenever they saw the same looks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rbmtools.errors import ValidationError

__all__ = ["batch_arms"]


def batch_arms(seed: int, batch: int, size: int, running: Sequence[str]) -> list[str]:
    """The arms of the ``size`` messages of batch number ``batch``, balanced among ``running``
    (in that order) and shuffled with ``seed``."""
    if not running:
        raise ValidationError("running", list(running), "must name at least one arm")
    if size < 0:
        raise ValidationError("size", size, "must not be negative")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(batch)])
    slots = rng.permutation(size) % len(running)
    return [running[i] for i in slots]
