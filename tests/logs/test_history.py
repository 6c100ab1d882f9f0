"""The history ``logs compact`` keeps: piece by piece it gives what one pass gives, a killed
compaction leaves it readable, and ``analyze --history`` reads it with what came in since."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbmtools.analysis import build_analysis, load
from rbmtools.analysis.history_files import MANIFEST_NAME, STATE_DIR, read_manifest
from rbmtools.cli import main
from rbmtools.errors import ValidationError
from rbmtools.logs import compact
from rbmtools.testing.synthetic import SyntheticConfig, generate_logs

STYLES = {"micros": 0.5, "seconds": 0.2, "offset": 0.2, "lower": 0.1}


def _config(seed: int, messages: int = 1500) -> SyntheticConfig:
    return SyntheticConfig(
        messages=messages, days=2.0, seed=seed, rotate_lines=500, garbage_lines=6,
        duplicate_share=0.1, late_share=0.2, time_styles=STYLES,
    )  # fmt: skip


def _document(**source) -> dict:
    """The analysis document, without what differs by how it was read (time, file counts)."""
    with load(**source) as data:
        out = build_analysis(data, "useCase,arm", bootstrap=20).to_dict()
    for key in ("seconds", "files", "outbox_files"):
        out["read"].pop(key)
    return out


class LiveLogs:
    """Logs that grow: the files of a generated history revealed bit by bit, in random cuts
    (a cut may fall inside a line, as when a writer is half-way through it)."""

    def __init__(self, root: Path, seed: int, messages: int = 1500) -> None:
        made = generate_logs(root / "made", _config(seed, messages))
        self.events, self.outbox = root / "live" / "events", root / "live" / "outbox"
        pairs = [
            (p, self.events / p.relative_to(made.events_dir))
            for p in sorted(made.events_dir.rglob("*.jsonl"))
        ]
        pairs += [(p, self.outbox / p.relative_to(made.outbox_dir))
                  for p in sorted(made.outbox_dir.rglob("*.jsonl"))]  # fmt: skip
        self.data = {target: source.read_bytes() for source, target in pairs}
        self.shown = dict.fromkeys(self.data, 0)
        self.rng = random.Random(seed)
        self.outbox.mkdir(parents=True)
        self.events.mkdir(parents=True)

    def grow(self) -> None:
        for target, blob in self.data.items():
            if self.shown[target] < len(blob) and self.rng.random() < 0.5:
                step = self.rng.randint(1, len(blob) // 3 + 1)
                self.shown[target] = min(len(blob), self.shown[target] + step)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob[: self.shown[target]])

    @property
    def done(self) -> bool:
        return all(self.shown[t] == len(b) for t, b in self.data.items())

    @property
    def whole_lines(self) -> bool:
        """No file ends inside a line (a full pass would count a half-written line)."""
        return all(n == 0 or self.data[t][n - 1 : n] == b"\n" for t, n in self.shown.items())

    def has_segments(self) -> bool:
        return any(self.events.rglob("*.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_compacting_piece_by_piece_gives_what_one_pass_gives(tmp_path, seed):
    live, history = LiveLogs(tmp_path, seed), tmp_path / "history"
    compared = 0
    while not live.done:
        live.grow()
        if not live.has_segments():
            continue
        if history.exists() and live.whole_lines:  # the state plus the tails not compacted
            assert _document(history=history) == _document(events=live.events, outbox=live.outbox)
            compared += 1
        compact(live.events, history, outbox=live.outbox)
    assert compared > 0
    assert _document(history=history) == _document(events=live.events, outbox=live.outbox)
    manifest = read_manifest(history)
    assert manifest.generation > 3 and manifest.messages  # many runs, the state by day


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _killed_compaction(live: LiveLogs, history: Path, after_files: int) -> bool:
    """Run ``rbmtools logs compact`` and kill it (SIGKILL) once it has written ``after_files``
    files; True if it was killed before it finished."""
    before = _files_under(history)
    command = [sys.executable, "-m", "rbmtools", "logs", "compact", str(live.events),
               "--to", str(history), "--outbox", str(live.outbox)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if len(_files_under(history) - before) >= after_files:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        return process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_a_killed_compaction_leaves_the_previous_history_readable(tmp_path):
    live, history = LiveLogs(tmp_path, seed=7, messages=2500), tmp_path / "history"
    while not live.has_segments():
        live.grow()
    compact(live.events, history, outbox=live.outbox)
    killed = 0
    for after_files in (1, 3, 6, 12):
        live.grow()
        while not live.whole_lines:
            live.grow()
        manifest_before = (history / MANIFEST_NAME).read_text()
        if _killed_compaction(live, history, after_files):
            killed += 1
            assert (history / MANIFEST_NAME).read_text() == manifest_before
        # killed or not: the history (and what came in since) is everything, once
        expected = _document(events=live.events, outbox=live.outbox)
        assert _document(history=history) == expected
    assert killed >= 2
    previous = {history / f for f in read_manifest(history).state_files()}
    compact(live.events, history, outbox=live.outbox)
    assert _document(history=history) == _document(events=live.events, outbox=live.outbox)
    # what the killed runs left is gone; the last generation's files stay one run longer
    # (for readers still on them)
    current = {history / f for f in read_manifest(history).state_files()}
    assert _files_under(history / STATE_DIR) <= current | previous


def test_the_commands_analyze_a_history(tmp_path, capsys):
    made = generate_logs(tmp_path / "made", _config(3, 400))
    history = tmp_path / "history"
    assert main(["logs", "compact", str(made.events_dir), "--to", str(history), "--outbox",
                 str(made.outbox_dir), "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["generation"] == 1 and result["state_days"] > 0
    args = ["--by", "useCase,arm", "--json", "--bootstrap", "10"]
    assert main(["analyze", "--history", str(history), *args]) == 0
    from_history = json.loads(capsys.readouterr().out)
    assert main(["analyze", "--events", str(made.events_dir), "--outbox", str(made.outbox_dir),
                 *args]) == 0  # fmt: skip
    from_logs = json.loads(capsys.readouterr().out)
    for doc in (from_history, from_logs):
        for key in ("seconds", "files", "outbox_files"):
            doc["read"].pop(key)
    assert from_history == from_logs
    assert main(["analyze", "--history", str(history), "--events", "x"]) == 2
    assert main(["analyze", "--history", str(tmp_path)]) == 2
    assert "no history" in capsys.readouterr().err


def test_rebuilding_the_state_and_compressing_segments_change_nothing(tmp_path):
    made = generate_logs(tmp_path / "made", _config(4, 600))
    history = tmp_path / "history"
    compact(made.events_dir, history, outbox=made.outbox_dir)
    expected = _document(history=history)
    rebuilt = compact(made.events_dir, history, rebuild=True)  # the outbox is remembered
    assert rebuilt.compacted == 0 and rebuilt.state_days > 0
    assert _document(history=history) == expected
    for segment in sorted(made.events_dir.rglob("*.jsonl"))[:2]:  # compressed after compaction
        with gzip.open(f"{segment}.gz", "wb") as handle:
            handle.write(segment.read_bytes())
        segment.unlink()
    again = compact(made.events_dir, history)
    assert again.compacted == 0 and again.lines == 0
    assert _document(history=history) == expected


def test_a_history_from_another_version_or_none_is_refused(tmp_path):
    old = tmp_path / "old"
    (old / "date=2026-11-25").mkdir(parents=True)
    (old / "date=2026-11-25" / "_MANIFEST").write_text("{}")
    with pytest.raises(ValidationError, match="earlier rbmtools"):
        load(history=old)
    with pytest.raises(ValidationError, match="no history"):
        load(history=tmp_path)
    with pytest.raises(ValidationError, match="not both"):
        load(tmp_path, history=old)
    assert not os.path.exists(tmp_path / MANIFEST_NAME)


def test_a_window_of_send_times_reads_the_history_as_it_reads_the_logs(tmp_path):
    made = generate_logs(tmp_path / "made", _config(6, 600))
    history = tmp_path / "history"
    compact(made.events_dir, history, outbox=made.outbox_dir)
    window = ("2026-11-23T06:00:00Z", "2026-11-24T18:00:00Z")
    assert _document(history=history, sent=window) == _document(
        events=made.events_dir, outbox=made.outbox_dir, sent=window
    )
    with load(history=history, sent=window) as data:
        lifecycle = data.lifecycle()
    assert len(lifecycle) and lifecycle.sendTime.min() >= datetime_of(window[0])


def datetime_of(text: str):
    from rbmtools.wire import parse_timestamp

    return parse_timestamp(text)


def test_a_new_line_rewrites_only_its_messages_day(tmp_path):
    """A late line about one message rewrites that message's day (its state and its cached
    summary); every other day keeps its files, and the analysis is still one pass's."""
    made = generate_logs(tmp_path / "made", dataclasses.replace(_config(7, 900), days=4.0))
    history = tmp_path / "history"
    compact(made.events_dir, history, outbox=made.outbox_dir)
    before = read_manifest(history)
    assert len(before.messages) >= 4 and set(before.summaries) == set(before.messages)
    segment = sorted(made.events_dir.rglob("*.jsonl"))[-1]
    line = next(t for t in segment.read_text().splitlines() if '"DELIVERED"' in t)
    with segment.open("a") as handle:  # the receiver logs a duplicate delivery
        handle.write(line + "\n")
    result = compact(made.events_dir, history)
    after = read_manifest(history)
    assert result.state_days == 1
    changed = {d for d in before.messages if after.messages.get(d) != before.messages[d]}
    assert len(changed) == 1
    assert {d for d in before.summaries if after.summaries.get(d) != before.summaries[d]} == changed
    assert _document(history=history) == _document(events=made.events_dir, outbox=made.outbox_dir)
