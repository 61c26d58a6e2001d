"""Importing curated debunk articles from CSV and JSONL files."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from crawlers.extract import clean_text, parse_cn_date
from store.db import Store
from store.records import DebunkIn
from store.writes import DebunkWriter

# Column names accepted for each field (lower-cased, stripped).
COLUMN_ALIASES = {
    "title": {"title", "标题", "headline", "name"},
    "url": {"url", "link", "链接", "网址", "href"},
    "date": {"date", "日期", "时间", "published", "pubdate", "publish_time", "time"},
    "text": {"text", "正文", "内容", "content", "body"},
    "source": {"source", "来源", "outlet"},
}
REQUIRED = ("title", "url", "text")
COMMIT_EVERY = 500


class ImportFileError(Exception):
    """A file that cannot be imported at all (unreadable, wrong columns)."""


@dataclass
class ImportReport:
    files: int = 0
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def imported(self) -> int:
        return self.counts["imported"]

    @property
    def updated(self) -> int:
        return self.counts["updated"]

    @property
    def unchanged(self) -> int:
        return self.counts["unchanged"]

    @property
    def rejected(self) -> dict[str, int]:
        return {k.split(":", 1)[1]: v for k, v in sorted(self.counts.items()) if k.startswith("rejected:")}

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
        }


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ImportFileError(f"{path}: neither UTF-8 nor GB18030 text")


def _column_map(header: list[str], path: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        key = name.strip().lower()
        for fieldname, aliases in COLUMN_ALIASES.items():
            if key in aliases and fieldname not in found:
                found[fieldname] = i
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        raise ImportFileError(f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header) or 'empty'})")
    return found


def read_csv(path: Path) -> Iterator[dict[str, str] | str]:
    """Rows as dicts; a string instead of a dict is a rejection reason."""
    csv.field_size_limit(sys.maxsize)
    text = _open_text(path)
    reader = csv.reader(_lines(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(f"{path}: empty file") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}: not CSV ({exc})") from None
    cols = _column_map(header, path)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield "bad_row"
            continue
        if not any(cell.strip() for cell in row):
            continue
        yield {f: (row[i] if i < len(row) else "") for f, i in cols.items()}


def _lines(text: str) -> Iterator[str]:
    # csv wants an iterable of lines that keeps embedded newlines inside quoted cells.
    import io

    return iter(io.StringIO(text, newline=""))


def read_jsonl(path: Path) -> Iterator[dict[str, str] | str]:
    text = _open_text(path)
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            yield "bad_json"
            continue
        if not isinstance(obj, dict):
            yield "bad_json"
            continue
        yield {k: ("" if obj.get(k) is None else str(obj.get(k))) for k in ("title", "url", "text", "date", "source")}


def read_file(path: Path) -> Iterator[dict[str, str] | str]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    raise ImportFileError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv or .jsonl")


def import_debunks(
    store: Store,
    paths: list[Path],
    *,
    source: str | None = None,
    threshold: float = 0.9,
    num_perm: int = 128,
    min_text_chars: int = 20,
    max_text_chars: int = 200_000,
    progress: Callable[[Path, int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_file_error: Callable[[ImportFileError], None] | None = None,
) -> ImportReport:
    """Read, clean, de-duplicate and store debunks; commits every few hundred rows."""
    report = ImportReport()
    loaded: list[tuple[Path, list[dict[str, str] | str]]] = []
    for path in paths:
        try:
            if not path.exists():
                raise ImportFileError(f"{path}: no such file")
            loaded.append((path, list(read_file(path))))
        except ImportFileError as err:
            if on_file_error is None:
                raise
            on_file_error(err)
    if on_total:
        on_total(sum(len(rows) for _, rows in loaded))
    with store.session() as s:
        writer = DebunkWriter(s, threshold=threshold, num_perm=num_perm, actor="import", counts=report.counts)
        pending = 0
        for path, rows in loaded:
            report.files += 1
            file_source = source or path.stem
            cleaned = [None if isinstance(r, str) else clean_text(r.get("text", "")) for r in rows]
            furniture = repeated_lines([c for c in cleaned if c])
            for row, text in zip(rows, cleaned):
                report.rows += 1
                if isinstance(row, str) or text is None:
                    report.counts[f"rejected:{row}"] += 1
                else:
                    if furniture:
                        text = "\n".join(ln for ln in text.split("\n") if ln not in furniture)
                    _import_row(writer, row, text, file_source, min_text_chars, max_text_chars)
                pending += 1
                if pending >= COMMIT_EVERY:
                    s.commit()
                    pending = 0
                if progress:
                    progress(path, 1)
    return report


def repeated_lines(texts: list[str], *, min_len: int = 20, min_share: float = 0.02, min_count: int = 5) -> set[str]:
    """Long lines that recur across many articles of one file: account promos, footers.

    A line of real content is specific to its article; one that opens or
    closes dozens of articles of the same outlet is page furniture.
    """
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update({ln for ln in t.split("\n") if len(ln) >= min_len})
    floor = max(min_count, int(len(texts) * min_share))
    return {ln for ln, n in counts.items() if n >= floor}


def _import_row(writer: DebunkWriter, row: dict[str, str], text: str, source: str, min_chars: int, max_chars: int) -> None:
    text = text[:max_chars]
    title = " ".join(clean_text(row.get("title", "")).split())
    if len(text) < min_chars:
        if not title:
            writer.counts["rejected:too_short"] += 1
            return
        text = text or title
    writer.add(
        DebunkIn(
            url=row.get("url", "").strip(),
            title=title,
            text=text,
            source=(row.get("source") or "").strip() or source,
            published=parse_cn_date(row.get("date")),
        )
    )
