"""``python -m rbmtools`` is the ``rbmtools`` command."""

from rbmtools.cli import main

raise SystemExit(main())
