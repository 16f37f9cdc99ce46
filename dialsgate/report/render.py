"""The facts as HTML: Jinja2 templates from dialsgate/report/templates, autoescaped."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from dialsgate.report.facts import ReportFacts

TEMPLATES = Path(__file__).resolve().parent / "templates"
INDEX_TEMPLATE = "index.html.j2"


def environment() -> Environment:
    # autoescape=True: every value is escaped unless a template says otherwise (none does).
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


def render(facts: ReportFacts) -> str:
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return environment().get_template(INDEX_TEMPLATE).render(facts=facts, css=css)
