"""A compacted history in an engine: its state, merged with what is new, and its summary.

A history (``history_files``) keeps every message's state row in the file of its home day
(``state.MESSAGE_COLUMNS``), the events about no message by their day, the malformed counts,
and the load summary of every home day. New logs (new files, the grown tails of old ones) are
turned into state rows (``state.PARTIAL_STEPS``, tables ``rbm_new_*``) and merged: a message's
new row finds the day file that holds it through the key index (``rbm_state_index``: the
``mkey`` of every state row), so only the days that hold a message the new logs speak of are
read, merged and summarised again; every other day keeps its cached summary. ``HistoryMerge``
does that in an engine (DuckDB), for ``logs compact`` (which writes the result) and for
``load(history=...)`` (which only reads): both give what one pass over all the logs gives.
"""

# SQL assembled from state.py and sql.py and quoted file paths (_files).
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rbmtools.analysis import sql, state
from rbmtools.analysis.history_files import MALFORMED_NAME, Manifest

if TYPE_CHECKING:  # pandas loads on first use (analysis.cli imports it beside the load)
    import pandas as pd

__all__ = ["NO_DAY", "HistoryMerge", "day_key", "rules_digest"]

#: The day key of rows without a day (a message never seen with a time).
NO_DAY = "none"


def rules_digest() -> str:
    """What a history's state and cached summaries were computed by: a digest of the SQL
    and of the DuckDB version (whose ``HASH`` keys the state). A history of another digest is
    rebuilt by the next compaction and refused by ``load`` until then."""
    import duckdb

    text = (
        sql.summary_over("", "f", "home_day")
        + state.facts_sql("s")
        + "".join(q for _, q in state.PARTIAL_STEPS)
        + duckdb.__version__
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def day_key(value: Any) -> str:
    return NO_DAY if value is None else str(value)[:10]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(root: Path, relative: list[str]) -> str:
    return "[" + ", ".join(_quote(str(root / f)) for f in relative) + "]"


_NO_KEYS = "SELECT CAST(NULL AS UBIGINT) AS mkey, CAST(NULL AS DATE) AS home_day WHERE FALSE"


@dataclass
class HistoryMerge:
    """Merges new state rows into a history's state inside ``engine`` (a ``DuckDBEngine``).

    After ``merge()``: ``rbm_merged_messages`` holds every state row of the days in
    ``message_days`` (which replace those days' files), ``rbm_merged_others`` the rows of the
    event days in ``other_days``, ``rbm_merged_bad`` all malformed counts, and
    ``rbm_fresh_summary`` the summary of each day in ``message_days`` (``rbm_partition``).
    """

    engine: Any
    root: Path
    manifest: Manifest
    window: tuple[str | None, str | None] | None = None  # a load's ``sent`` (bounds as text)
    message_days: set[str] = field(default_factory=set)
    other_days: set[str] = field(default_factory=set)
    merged: bool = False

    def build_index(self, needed: bool = True) -> None:
        """``rbm_state_index``: the key and day of every state row of the manifest, read from
        the day files themselves (a view: nothing held in memory, and always the files the
        manifest lists now). Left empty when not ``needed``: nothing new came in."""
        files = sorted(self.manifest.messages.values())
        keys = (
            f"SELECT mkey, home_day FROM read_parquet({_files(self.root, files)})"
            if files and needed
            else _NO_KEYS
        )
        self.engine.create_view("rbm_state_index", keys)

    def _read(self, kind: str, days: set[str]) -> str:
        """The rows of ``days`` as the manifest lists them (none if no file)."""
        listed = self.manifest.messages if kind == "messages" else self.manifest.others
        files = sorted(listed[d] for d in days if d in listed)
        columns = state.MESSAGE_COLUMNS if kind == "messages" else state.OTHER_COLUMNS
        if not files:
            return f"SELECT {', '.join(columns)} FROM rbm_new_{kind} WHERE FALSE"
        return f"SELECT {', '.join(columns)} FROM read_parquet({_files(self.root, files)})"

    def _days(self, query: str) -> set[str]:
        return {day_key(v) for v in self.engine.df(query).iloc[:, 0]}

    def merge(self) -> None:
        """Merge ``rbm_new_messages``, ``rbm_new_others`` and ``rbm_new_bad`` (see the class
        docstring); ``build_index`` first."""
        engine = self.engine
        new = engine.row("SELECT COUNT(*) AS n FROM rbm_new_messages")["n"]
        self.build_index(needed=bool(new))  # (the files may have changed since the last merge)
        # New rows of messages the state holds already are merged with those days' rows; the
        # others are new messages: they join their day as they are. (The index is probed by
        # the new keys, the small side, whatever the size of the history.)
        engine.create_table(
            "rbm_known_days",
            "SELECT i.mkey, i.home_day FROM rbm_state_index AS i "
            "JOIN (SELECT mkey FROM rbm_new_messages) AS n ON i.mkey = n.mkey",
        )
        engine.create_table(
            "rbm_new_known",
            "SELECT * FROM rbm_new_messages WHERE mkey IN (SELECT mkey FROM rbm_known_days)",
        )
        days = self._days(
            "SELECT DISTINCT home_day FROM rbm_known_days "
            "UNION SELECT DISTINCT home_day FROM rbm_new_messages"
        )
        unknown = (
            "SELECT * FROM rbm_new_messages WHERE mkey NOT IN (SELECT mkey FROM rbm_new_known)"
        )
        while True:
            merged = state.with_home_day(
                "("
                + state.merge_messages_sql(
                    f"({self._read('messages', days)} UNION ALL BY NAME "
                    "SELECT * FROM rbm_new_known)"
                )
                + ")"
            )
            engine.create_table(
                "rbm_merged_messages", f"SELECT * FROM ({merged}) UNION ALL BY NAME {unknown}"
            )
            landed = self._days("SELECT DISTINCT home_day FROM rbm_merged_messages")
            unread = {d for d in landed - days if d in self.manifest.messages}
            days |= landed
            if not unread:  # (a merged row lands on a day read already, see state)
                break
        engine.execute("DROP TABLE IF EXISTS rbm_new_known")
        engine.execute("DROP TABLE IF EXISTS rbm_known_days")
        self.message_days = days
        self.other_days = self._days("SELECT DISTINCT event_day FROM rbm_new_others")
        engine.create_table(
            "rbm_merged_others",
            state.merge_others_sql(
                f"({self._read('others', self.other_days)} UNION ALL BY NAME "
                "SELECT * FROM rbm_new_others)"
            ),
        )
        old_bad = (
            f"SELECT * FROM read_parquet({_files(self.root, [self.manifest.bad])})"
            if self.manifest.bad
            else "SELECT * FROM rbm_new_bad WHERE FALSE"
        )
        engine.create_table(
            "rbm_merged_bad",
            state.merge_bad_sql(f"({old_bad} UNION ALL BY NAME SELECT * FROM rbm_new_bad)"),
        )
        facts = f"rbm_day_facts AS ({state.facts_sql('rbm_merged_messages')}),\n"
        engine.create_table(
            "rbm_fresh_summary", sql.summary_over(facts, "rbm_day_facts", "home_day")
        )
        self.merged = True

    # ------------------------------------------------------------------ reading it all

    def _untouched(self, kind: str) -> list[str]:
        listed = self.manifest.messages if kind == "messages" else self.manifest.others
        touched = self.message_days if kind == "messages" else self.other_days
        return sorted(f for d, f in listed.items() if d not in touched)

    def _all(self, kind: str) -> str:
        """Every row of ``kind`` (messages, others): untouched files and the merged rows."""
        columns = ", ".join(state.MESSAGE_COLUMNS if kind == "messages" else state.OTHER_COLUMNS)
        merged = f"SELECT {columns} FROM rbm_merged_{kind}"
        files = self._untouched(kind)
        if not files:
            return merged
        return f"SELECT {columns} FROM read_parquet({_files(self.root, files)}) UNION ALL {merged}"

    def _summaries(self, days: set[str]) -> str:
        return _files(self.root, sorted(self.manifest.summaries[d] for d in days))

    def summarise(self) -> None:
        """``rbm_summary`` (what ``sql.SUMMARY`` gives over all the logs): the cached summary
        of every untouched day, the fresh ones, and the rows about no message; with no cache,
        or one the SQL of another version computed, every day is summarised again.

        The cached summaries (millions of rows over a long history) are read where they lie:
        ``rbm_summary`` is a view over them and small tables, so a query reads only the columns
        and rows it needs (the files stay until the second compaction after this load)."""
        engine = self.engine
        self.day_summaries()
        others = state.others_facts_sql(f"({self._all('others')})", "rbm_merged_bad")
        # A message's home day is its send day, the summaries' ``day``: a row of a day's
        # summary with that day shares its keys with no row of another, and stays as it is;
        # the rest (messages never sent, rows about no message) is added up.
        parts = (
            "SELECT * EXCLUDE (rbm_partition) FROM rbm_day_summaries "
            "WHERE day IS DISTINCT FROM rbm_partition UNION ALL BY NAME SELECT * FROM ("
            + sql.summary_over(f"rbm_other_facts AS ({others}),\n", "rbm_other_facts")
            + ")"
        )
        engine.create_view("rbm_summary_parts", parts)
        engine.create_table("rbm_summary_added", sql.SUMMARY_COMBINE)
        engine.execute("DROP VIEW IF EXISTS rbm_summary_parts")
        kept = sql.summary_rows_sql("rbm_day_summaries", "day = rbm_partition")
        engine.create_view(
            "rbm_summary", f"{kept}\nUNION ALL BY NAME\nSELECT * FROM rbm_summary_added"
        )

    def day_summaries(self) -> None:
        """``rbm_day_summaries``: the summary of every home day (``rbm_partition``), cached or
        fresh (the days ``merge`` touched, those without a cached one: summarised from the
        state). With a window, every day is summarised again from the state."""
        engine = self.engine
        if self.window is not None:  # a window: every message's state, none of the caches
            rows = f"({self._all('messages')})"
            facts = f"rbm_day_facts AS ({state.facts_sql(rows, self.window)}),\n"
            engine.create_table(
                "rbm_day_summaries", sql.summary_over(facts, "rbm_day_facts", "home_day")
            )
            return
        days = "SELECT * FROM rbm_fresh_summary"
        cached = self._cached()
        if cached:
            days += f" UNION ALL BY NAME SELECT * FROM read_parquet({self._summaries(cached)})"
        uncached = self.uncached_summaries()
        if uncached:
            days += f" UNION ALL BY NAME {uncached}"
            engine.create_table("rbm_day_summaries", days)
        else:  # read where it is used (once: see summarise)
            engine.create_view("rbm_day_summaries", days)

    def _cached(self) -> set[str]:
        """The untouched days whose cached summary holds (the SQL that wrote it is ours)."""
        if self.manifest.rules != rules_digest():
            return set()
        return (set(self.manifest.messages) - self.message_days) & set(self.manifest.summaries)

    def uncached_summaries(self) -> str | None:
        """The summaries of the untouched days without a cached one (a query), summarised
        from their state; None if every day has one."""
        days = set(self.manifest.messages) - self.message_days - self._cached()
        if not days:
            return None
        files = _files(self.root, sorted(self.manifest.messages[d] for d in days))
        facts = f"rbm_day_facts AS ({state.facts_sql(f'(SELECT * FROM read_parquet({files}))')}),\n"
        return sql.summary_over(facts, "rbm_day_facts", "home_day")

    def facts_query(self) -> str:
        """Every facts row of the history (for ``rbm_facts``, the lifecycle)."""
        others = state.others_facts_sql(f"({self._all('others')})", "rbm_merged_bad")
        messages = state.facts_sql(f"({self._all('messages')})", self.window)
        return f"SELECT * FROM ({messages}) UNION ALL BY NAME SELECT * FROM ({others})"


def drop_new_tables(engine: Any) -> None:
    for name, _ in state.PARTIAL_STEPS:
        engine.execute(f"DROP TABLE IF EXISTS {name}")


def partial_state(engine: Any, renames: dict[str, str] | None = None) -> None:
    """``state.PARTIAL_STEPS`` over the registered logs; ``renames`` maps the files the engine
    read (copies of tails) to the source files they came from, in ``rbm_new_bad``."""
    for name, query in state.PARTIAL_STEPS:
        engine.create_table(name, query)
    for copy, source in (renames or {}).items():
        engine.execute(
            f"UPDATE rbm_new_bad SET bad_file = {_quote(source)} WHERE bad_file = {_quote(copy)}"
        )
    for name in ("rbm_new_lines", "rbm_new_events", "rbm_new_outbox"):
        engine.execute(f"DROP TABLE IF EXISTS {name}")


def set_aside(engine: Any, merge: HistoryMerge) -> pd.DataFrame:
    """Every line a history set aside (its ``_MALFORMED`` files), and those of the logs'
    tails it has not compacted yet: the frame of ``Dataset.malformed``."""
    import pandas as pd

    columns = ["log", "file", "line", "text", "problem"]
    rows: list[dict[str, Any]] = []
    for path in sorted(merge.root.glob(f"**/{MALFORMED_NAME}")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                rows.append({c: record.get(c) for c in columns})
    bad = engine.df(
        "SELECT DISTINCT log, bad_file FROM rbm_new_bad WHERE bad_file IS NOT NULL ORDER BY 2"
    )
    for log, path in bad.itertuples(index=False):
        entry = next((e for e in merge.manifest.sources.values() if e.path == path), None)
        before = entry.lines if entry is not None else 0
        if not os.path.exists(path):
            continue
        for number, text, problem in engine.bad_rows(path, log):
            if number > before:
                rows.append(dict(zip(columns, (log, path, number, text, problem), strict=True)))
    return pd.DataFrame(rows, columns=columns)
