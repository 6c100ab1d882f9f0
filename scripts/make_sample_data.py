"""Regenerate data/sample/: the sample event and outbox logs the notebooks read by default.

    .venv/bin/python scripts/make_sample_data.py            # rewrite data/sample/
    .venv/bin/python scripts/make_sample_data.py --check    # regenerate elsewhere, compare

A real experiment (``rbmtools.testing.sample_data.SAMPLE_SPEC``) runs on the emulator in its
stepping mode, with time driven explicitly, so the files come out byte for byte the same on
every run (see that module's docstring). It takes about two to three minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rbmtools.testing.sample_data import checksums, make_sample_data

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "sample", help="target folder")
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary folder and compare with --out (exit 1 if different)",
    )
    args = parser.parse_args(argv)
    if not args.check:
        print(make_sample_data(args.out))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        fresh = make_sample_data(Path(scratch) / "sample")
        print(fresh)
        kept = checksums(args.out)
    if kept == fresh.files:
        print(f"{args.out}: identical ({len(kept)} files)")
        return 0
    for name in sorted(set(kept) | set(fresh.files)):
        if kept.get(name) != fresh.files.get(name):
            print(f"differs: {name}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
