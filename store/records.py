"""Plain records that cross module boundaries (spiders, importers → store)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass
class DebunkIn:
    url: str
    title: str
    text: str
    source: str
    published: dt.date | None = None
    verdict: str | None = None
    editor: str | None = None
    # The original publisher when another platform carries the article (the page's 来源).
    origin: str | None = None


@dataclass
class ClaimIn:
    source: str
    text: str
    external_id: str | None = None
    url: str | None = None
    published: dt.datetime | None = None
