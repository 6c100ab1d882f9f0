"""The stylesheet of every rbmtools report and where the report templates are.

Kept apart from ``page`` (which needs pandas and Jinja2) so that rendering a notebook report
(``rbmtools.notebook.render_html``) reads the stylesheet without importing either.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["TEMPLATES", "css"]

#: The Jinja2 templates and the stylesheet of the reports.
TEMPLATES = Path(__file__).with_name("templates")


@cache
def css() -> str:
    """The stylesheet every report carries."""
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")
