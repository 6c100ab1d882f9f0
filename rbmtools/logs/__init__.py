"""Housekeeping of the event logs: ``compact`` turns receiver segments into day-partitioned
Parquet (idempotently), and ``rbmtools logs sql`` prints the analysis SQL for other engines.
"""

from rbmtools.logs.compact import CompactionLockedError, CompactionResult, compact

__all__ = ["CompactionLockedError", "CompactionResult", "compact"]
