"""The report's HTML page (analysis/document.py, analysis/templates/report.html.j2), read as a parser sees it: one
self-contained file with every table of the Markdown report, figures inline, the summary, a best cell's
configuration and seeds, and the progress of a sweep not finished. tests/test_report_browser.py opens it in a
real browser."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from analysis import document
from analysis.report import write_report
from tests.report_fixture import markdown_tables, write_sweep


class Page(HTMLParser):
    """Tables (rows of cell texts and sort keys), images, details texts, and anything fetched from elsewhere."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.details, self.fetched = [], [], [], []
        self._cell = None
        self._detail = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th"):
            self._cell = {"text": "", "key": attrs.get("data-key"), "head": tag == "th"}
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "details" and self._cell is not None:
            self._detail = []
        for name in ("src", "href"):
            if name in attrs and tag != "img" or (tag == "img" and not attrs.get("src", "").startswith("data:")):
                self.fetched.append((tag, attrs.get(name)))

    def handle_endtag(self, tag):
        if tag == "details" and self._detail is not None:
            self.details.append("".join(self._detail))
            self._detail = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self.tables:
            table = self.tables[-1]
            if self._row and all(c["head"] for c in self._row):
                table["head"] = [c["text"] for c in self._row]
            else:
                table["rows"].append(self._row)

    def handle_data(self, data):
        self.text.append(data)
        if self._detail is not None:
            self._detail.append(data)
        elif self._cell is not None:
            self._cell["text"] += data


def _page(folder) -> Page:
    page = Page()
    page.feed((folder / "report" / "index.html").read_text())
    return page


def test_the_page_has_every_table_of_the_markdown_report_and_its_figures_inline(tmp_path):
    write_sweep(tmp_path)
    report = write_report(str(tmp_path))
    markdown = (tmp_path / "report" / "README.md").read_text()
    page = _page(tmp_path)
    assert [len(t["rows"]) for t in page.tables] == markdown_tables(markdown)  # the same tables, row for row
    headings = re.findall(r"^#{2,3} (.+)$", markdown, re.M)
    text = " ".join(" ".join(page.text).split())
    for heading in headings:
        assert " ".join(heading.replace("`", "").split()) in text, heading
    assert report.progress is None and "Not finished" not in text
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(page.images) == len(figures) >= 3
    kinds = []
    for image in page.images:
        mime, data = re.fullmatch(r"data:(image/[a-z+]+);base64,(.+)", image["src"], re.S).groups()
        raw = base64.b64decode(data)
        assert len(raw) > 2_000
        kinds.append(mime)
        assert raw.startswith(b"<?xml") if mime == "image/svg+xml" else raw.startswith(b"\x89PNG")
    assert "image/svg+xml" in kinds and "image/png" in kinds  # line plots as SVG, the heatmap as PNG
    assert page.fetched == []  # nothing from the network (or any other file): the page is all there is


def test_the_summary_says_trials_by_status_wall_time_versions_plan_hash_and_the_spec(tmp_path):
    written = write_sweep(tmp_path)
    write_report(str(tmp_path))
    html = (tmp_path / "report" / "index.html").read_text()
    text = " ".join(" ".join(_page(tmp_path).text).split())
    assert f"{len(written['ids'])} finished of {len(written['ids'])} planned" in text
    assert "1 failed" in text and f"{len(written['ids']) - 1} completed" in text
    assert "0123456789abcdef0123456789abcdef" in text and "torch 2.13.0+cpu" in text and "ray 2.60.0" in text
    assert re.search(r"wall time \d+ (h|min)", text) and "started 2026-12-04 01:00:00 +0000" in text
    assert '<details id="spec">' in html and "magnitude: {lr: [0.1, 0.2]}" in text


def test_each_best_cell_shows_its_configuration_and_the_seeds_behind_the_mean(tmp_path):
    write_sweep(tmp_path)
    write_report(str(tmp_path))
    main = _page(tmp_path).tables[0]
    assert main["head"] == ["target sparsity", "dense", "magnitude", "random", "variational_dropout"]
    by_row = {row[0]["text"]: row for row in main["rows"]}
    cell = by_row["0.9"][2]  # magnitude at 0.9: config a (lr 0.1) wins, 0.87 and 0.86
    assert cell["text"].startswith("86.50 ± 0.71 (0.900)") and cell["key"] == "86.5"
    detail = next(d for d in _page(tmp_path).details if "mag-a0.9" in d)
    assert "lr=0.1" in detail and "best of 2 configurations; 2 seeds" in detail
    assert "seed 0: 87.00 (sparsity 0.9000)" in detail and "seed 1: 86.00 (sparsity 0.9000)" in detail


def test_a_sweep_in_progress_gets_a_report_of_its_rows_so_far_that_says_how_many_have_finished(tmp_path):
    written = write_sweep(tmp_path, planned_extra=30)
    report = write_report(str(tmp_path))
    n = len(written["ids"])
    expected = f"Not finished: {n} of {n + 30} planned trials have finished."
    assert report.progress.startswith(expected)
    readme = (tmp_path / "report" / "README.md").read_text().splitlines()
    assert readme[2].startswith(f"**{expected}** This report shows the rows so far"), readme[:3]
    assert expected in " ".join(_page(tmp_path).text)


@pytest.mark.parametrize(
    "value, key",
    [("91.20 ± 0.31 (0.900)", 91.2), ("+3 (1.20x)", 3.0), ("0 (dense)", 0.0), ("—", None), ("", None), (7, 7.0),
     (float("nan"), None), ("-1e-3", -0.001), ("never reached", None)],
)  # fmt: skip
def test_cells_sort_by_their_leading_number_and_text_after_every_number(value, key):
    assert document.sort_key(value) == key
