"""The report as a list of blocks, written twice: as Markdown (README.md, as before) and as one self-contained HTML
page (index.html) that opens offline or when mailed: figures inline (SVG for line plots), tables sortable by any
column, a best cell's configuration and seeds on demand, and no script, style or font fetched from anywhere.

A block is prose (a Markdown string; the sections write headings, paragraphs and emphasis as before), a `Table`
or a `Figure`. The page is a Jinja2 template (templates/report.html.j2); prose becomes HTML through markdown-it-py
(CommonMark, raw HTML escaped), so nothing on the page is stitched from strings by hand.
"""

from __future__ import annotations

import base64
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis import tables


@dataclass
class Table:
    """A table: `frame` (its index shown as the first column when `index`), and `details`: text shown on demand
    for some cells, keyed by (row label, column label) as the frame names them."""

    frame: pd.DataFrame
    index: bool = True
    details: dict[tuple[Any, Any], str] = field(default_factory=dict)


@dataclass
class Figure:
    """A figure in the report folder: `file` is its PNG (the Markdown links it); the page inlines the SVG of the
    same name where the plot wrote one (line plots), else the PNG."""

    file: str
    alt: str


Block = str | Table | Figure


def markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Table):
            out.append(tables.to_markdown(block.frame, block.index))
        elif isinstance(block, Figure):
            out.append(f"![{block.alt}]({block.file})")
        else:
            out.append(block)
    return "\n".join(out)


def html(blocks: list[Block], folder: str, title: str, summary: dict) -> str:
    """The page: `summary` (see analysis.report._page_summary) above the blocks; figures are read from `folder`."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("report.html.j2")
    return template.render(title=title, summary=summary, blocks=_page_blocks(blocks, folder))


def _page_blocks(blocks: list[Block], folder: str) -> list[dict]:
    """Consecutive prose strings become one HTML fragment; tables and figures become the template's data."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    md = MarkdownIt("commonmark", {"html": False})
    out: list[dict] = []
    prose: list[str] = []

    def flush():
        if prose:
            out.append({"kind": "prose", "html": Markup(md.render("\n".join(prose)))})
            prose.clear()

    for block in blocks:
        if isinstance(block, str):
            prose.append(block)
            continue
        flush()
        out.append(_table(block) if isinstance(block, Table) else _figure(block, folder))
    flush()
    return out


_NUMBER = re.compile(r"^\s*[+\-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+\-]?\d+)?")


def sort_key(value: Any) -> float | None:
    """The number a cell sorts by: the value itself, or the leading number of its text ('91.20 ± 0.31 (0.900)',
    '+3 (1.20x)', '0 (dense)'); None for text and empty cells, which sort after every number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    match = _NUMBER.match(str(value))
    return float(match.group(0)) if match else None


def _table(block: Table) -> dict:
    frame = block.frame.reset_index() if block.index else block.frame
    labels = list(block.frame.index) if block.index else [None] * len(frame)
    columns = [str(c) for c in frame.columns]
    rows = []
    for label, values in zip(labels, frame.itertuples(index=False)):
        cells = []
        for name, value in zip(frame.columns, values):
            text = tables.cell_text(value)
            cells.append({"text": text, "key": sort_key(value), "detail": block.details.get((label, name))})
        rows.append(cells)
    return {"kind": "table", "columns": columns, "rows": rows}


def _figure(block: Figure, folder: str) -> dict:
    png = os.path.join(folder, block.file)
    svg = os.path.splitext(png)[0] + ".svg"
    path, mime = (svg, "image/svg+xml") if os.path.exists(svg) else (png, "image/png")
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return {"kind": "figure", "alt": block.alt, "src": f"data:{mime};base64,{data}", "file": block.file}
