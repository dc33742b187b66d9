"""Reading the dashboard's tables out of server-rendered HTML (no browser)."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class Rows(HTMLParser):
    """Each ``<tr data-{key}>`` in ``<table id=table_id>``'s body: its cells' text by
    their ``data-label``, and the row's own attributes."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0  # > 0 inside the table
        self.in_body = False
        self.rows: list[dict[str, str]] = []
        self.attrs: list[dict[str, str]] = []
        self.label: str | None = None
        self.in_template = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "template":
            self.in_template = True
        if self.in_template:
            return
        if tag == "table" and found.get("id") == self.table_id:
            self.depth = 1
        elif tag == "table" and self.depth:
            self.depth += 1
        if not self.depth:
            return
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append({})
            self.attrs.append(found)
        elif tag in ("td", "th") and self.in_body and self.rows:
            self.label = found.get("data-label", "")
            self.rows[-1][self.label] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "template":
            self.in_template = False
        if self.in_template or not self.depth:
            return
        if tag in ("td", "th"):
            self.label = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.label is not None and self.rows and not self.in_template:
            self.rows[-1][self.label] += data


def table_rows(page: str, table_id: str) -> list[dict[str, str]]:
    """The rows of ``table_id``'s body, each cell's whitespace-collapsed text by label,
    and the row's attributes under ``@name``."""
    parser = Rows(table_id)
    parser.feed(page)
    return [
        {**{k: re.sub(r"\s+", " ", v).strip() for k, v in row.items()}}
        | {f"@{k}": v for k, v in attrs.items()}
        for row, attrs in zip(parser.rows, parser.attrs, strict=True)
    ]
