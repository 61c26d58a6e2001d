"""Highlighted snippets computed from the raw text, shared by every backend."""

from __future__ import annotations

import html
import re



def _term_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    lowered = text.lower()
    spans: list[tuple[int, int]] = []
    for term in sorted(set(t for t in terms if t), key=len, reverse=True):
        for m in re.finditer(re.escape(term.lower()), lowered):
            s, e = m.span()
            if not any(s < e2 and e > s2 for s2, e2 in spans):
                spans.append((s, e))
    return sorted(spans)


def make_snippet(text: str, terms: list[str], *, width: int = 120) -> str:
    """The window of ``text`` holding the most query terms, HTML-escaped, terms in <mark>."""
    text = " ".join(text.split()) if text else ""
    spans = _term_spans(text, terms)
    if not spans:
        frag = text[:width]
        return html.escape(frag) + ("…" if len(text) > width else "")
    best_start, best_n = 0, -1
    for s, _ in spans:
        start = max(0, s - width // 4)
        n = sum(1 for s2, e2 in spans if s2 >= start and e2 <= start + width)
        if n > best_n:
            best_start, best_n = start, n
    end = min(len(text), best_start + width)
    out = ["…" if best_start > 0 else ""]
    pos = best_start
    for s, e in spans:
        if s < best_start or e > end:
            continue
        out.append(html.escape(text[pos:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:end]))
    if end < len(text):
        out.append("…")
    return "".join(out)
