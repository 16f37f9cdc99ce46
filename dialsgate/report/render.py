"""The facts as HTML: Jinja2 templates from dialsgate/report/templates, autoescaped, every value
made inert first."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from dialsgate.inert import inert
from dialsgate.report.facts import ReportFacts

TEMPLATES = Path(__file__).resolve().parent / "templates"
INDEX_TEMPLATE = "index.html.j2"


def _inert_value(value):
    """Every ``{{ value }}`` of the templates (a folder's names, files, messages) with its control
    characters and bidi overrides shown as visible escapes (``dialsgate.inert``), before the
    autoescape. Markup (a macro's output) was already made of such values."""
    if value is None or isinstance(value, (Markup, bool, int, float)):
        return value
    return inert(value)


def environment() -> Environment:
    # autoescape=True: every value is escaped unless a template says otherwise (none does).
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_inert_value,
    )


def render(facts: ReportFacts) -> str:
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return environment().get_template(INDEX_TEMPLATE).render(facts=facts, css=css)
