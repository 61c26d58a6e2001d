"""Checks of the generic spider's sources (crawl.sources) beyond what pydantic validates.

``validate_sources(settings)`` returns one line per problem, each naming the
key, e.g. ``crawl.sources.forum.item: not a valid CSS selector: …``. The
generic spider runs ``source_errors`` on each source before crawling it and
skips a broken source with one error line while the others are crawled.

Selectors are CSS, or XPath when prefixed ``xpath:``; they are checked by
running them with parsel (the engine the spider uses) on an empty document,
so syntax errors, unknown pseudo-elements and undefined XPath prefixes or
functions are all caught here rather than in the middle of a crawl.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector

XPATH_PREFIX = "xpath:"
SELECTOR_FIELDS = ("item", "link", "next_page", "title", "text", "date")
# Longest display name the store keeps (store.models.Claim.source / Debunk.source).
MAX_SOURCE_CHARS = 200

_PROBE = "<html><head><title></title></head><body><div><a href='x'>x</a></div></body></html>"


def _one_line(msg: object) -> str:
    text = " ".join(str(msg).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def selector_error(expr: str) -> str | None:
    """Why the CSS or ``xpath:`` selector ``expr`` cannot be used, or None when it can."""
    probe = Selector(text=_PROBE)
    if expr.startswith(XPATH_PREFIX):
        xpath = expr[len(XPATH_PREFIX) :].strip()
        if not xpath:
            return "empty XPath expression after 'xpath:'"
        try:
            probe.xpath(xpath)
        except Exception as exc:  # noqa: BLE001 - parsel raises ValueError, lxml its own errors
            return f"not a valid XPath expression: {_one_line(exc).removeprefix('XPath error: ')}"
        return None
    try:
        probe.css(expr)
    except Exception as exc:  # noqa: BLE001 - cssselect's SelectorError and friends
        return f"not a valid CSS selector: {_one_line(exc)}"
    return None


def source_errors(key: str, src: Any) -> list[str]:
    """Problems of the source ``src`` (a settings.SourceSettings) declared as crawl.sources.``key``."""
    base = f"crawl.sources.{key}"
    errors: list[str] = []
    if not key.strip() or any(ch.isspace() for ch in key):
        errors.append(f"{base}: a source key must be a non-empty name without spaces")
    for i, url in enumerate(src.urls):
        parts = urlsplit(str(url).strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(f"{base}.urls[{i}]: not an http(s) URL: {_one_line(url)!r}")
    for name in SELECTOR_FIELDS:
        expr = getattr(src, name) or ""
        if not expr.strip():
            continue
        why = selector_error(expr.strip())
        if why:
            errors.append(f"{base}.{name}: {why}")
    if src.type == "list" and not (src.item.strip() or src.link.strip()):
        errors.append(f"{base}: type list needs `item` or `link` (selectors of the entries or of their links)")
    for i, pattern in enumerate(src.allow):
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(f"{base}.allow[{i}]: bad regular expression {pattern!r}: {_one_line(exc)}")
    if len(src.source) > MAX_SOURCE_CHARS:
        errors.append(f"{base}.source: longer than {MAX_SOURCE_CHARS} characters")
    if not src.source.strip() and len(key) > MAX_SOURCE_CHARS:
        errors.append(f"{base}: the key is used as the source name and is longer than {MAX_SOURCE_CHARS} characters")
    return errors


def validate_sources(settings: Any) -> list[str]:
    """Errors in ``settings.crawl.sources`` that pydantic does not catch, one line each, naming the key."""
    errors: list[str] = []
    for key, src in settings.crawl.sources.items():
        errors.extend(source_errors(key, src))
    return errors
