"""丁香园 / 丁香医生 COVID-19 rumor feed (ncov.dxy.cn, 2020–2021): one DebunkItem per entry.

Sources the spider reads (the start URL decides):

- the static JSON file behind https://ncov.dxy.cn/ncovh5/view/pneumonia_rumors:
  ``https://file1.dxycdn.com/2020/0130/454/3393874921745912507-115.json`` →
  ``{"data": [{id, title, mainSummary, summary, body, rumorType, score, sourceUrl}]}``
  (a bare list is accepted too);
- the older H5 page (https://3g.dxy.cn/newh5/view/pneumonia) that embeds the same
  entries as ``<script id="getIndexRumorList">try { window.getIndexRumorList = [...]}catch(e){}</script>``.

Fields: title = ``title`` (the claim, phrased as a question); text = ``mainSummary``
(the one-line verdict, usually "WHO：…"), ``summary`` and ``body`` (the explanation),
one per line, as sanitized plain text; no date is published with the entries,
so ``published`` is None; ``editor`` is None (the speaker named at the start of
mainSummary, e.g. 丁香医生团队 / 钟南山院士, is the cited authority, not an editor).

URL: ``sourceUrl`` when it is an http(s) URL; otherwise (every entry of the
captured feed has an empty sourceUrl) the stable synthetic
``https://ncov.dxy.cn/ncovh5/view/pneumonia_rumors?id=<id>`` built from ``SYNTHETIC_URL``:
the rumor page plus the entry's numeric id, so a re-crawl finds the same row.

Verdicts (``RUMOR_TYPES``), checked against every entry of the real feed
(the captured feed in the shared research fixtures, dxy/dxycdn_rumor_list_data_2021.json, 134 entries):

- 0 → rumor (104 entries): the summaries deny the claim — "经核查，此信息为谣言。",
  "相关信息不属实。", "系去年旧闻！", "很遗憾，无法杀死病毒。" (桑拿、汗蒸能预防新冠病毒？);
- 1 → credible (9): the summaries confirm it — "丁香医生团队：确实，含氯消毒剂不能和洁厕灵同时使用",
  "国家卫健委：冠状病毒对紫外线敏感", "WHO 证实：到目前为止，还没有专门用于预防和治疗新冠病毒的药物";
- 2 → unproven (21): the summaries say the evidence is open — "目前尚无证据证明喝茶可以预防新冠病毒。",
  "这种说法目前尚无研究数据支撑。", "丁香医生团队：结论存疑，…针对新冠病毒尚无定论",
  "丁香医生团队：目前仅有一篇论文提到，并非定论".

Any other rumorType gives no verdict (None) and counts ``piyao/dxy/verdict_unknown``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from scrapy.exceptions import CloseSpider
from scrapy.http import Response

from classifier.labels import VERDICT_CREDIBLE, VERDICT_RUMOR, VERDICT_UNPROVEN
from crawlers.extract import clean_text, html_to_text
from crawlers.items import DebunkItem
from crawlers.spiders._base import PiyaoSpider

SOURCE = "丁香医生"
STAT = "piyao/dxy/"
SYNTHETIC_URL = "https://ncov.dxy.cn/ncovh5/view/pneumonia_rumors?id={id}"

# rumorType → piyao verdict code (evidence in the module docstring).
RUMOR_TYPES: dict[int, str] = {
    0: VERDICT_RUMOR,
    1: VERDICT_CREDIBLE,
    2: VERDICT_UNPROVEN,
}

EMBEDDED = re.compile(r"window\.getIndexRumorList\s*=\s*")
_HTTP_URL = re.compile(r"^https?://[^\s/]+", re.I)


def verdict_of(rumor_type: Any, stats: Any = None) -> str | None:
    """piyao verdict code of a rumorType; None (and a stat) for an unknown one."""
    try:
        key = int(str(rumor_type).strip())
    except (TypeError, ValueError):
        key = None
    code = RUMOR_TYPES.get(key) if key is not None else None
    if code is None and stats is not None:
        stats.inc_value(STAT + "verdict_unknown")
        stats.inc_value(STAT + f"verdict_unknown/{rumor_type}")
    return code


def entry_url(entry: dict[str, Any]) -> str | None:
    """``sourceUrl`` when usable, else the synthetic rumor-page URL of the entry's id."""
    source_url = str(entry.get("sourceUrl") or "").strip()
    if _HTTP_URL.match(source_url):
        return source_url
    eid = str(entry.get("id") if entry.get("id") is not None else "").strip()
    if not eid or not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", eid):
        return None
    return SYNTHETIC_URL.format(id=eid)


def _plain(value: Any) -> str:
    text = str(value or "").strip()
    if not text:
        return ""
    if "<" in text or "&" in text:
        return html_to_text(text)
    return clean_text(text)


def entries_of(text: str) -> list[dict[str, Any]] | None:
    """The rumor entries of a JSON feed or of an H5 page's embedded list; None when there are none."""
    stripped = (text or "").strip().lstrip("\ufeff")
    doc: Any = None
    if stripped[:1] in ("{", "["):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
    if doc is None:
        for m in EMBEDDED.finditer(text or ""):  # the first assignment that holds a JSON list
            try:
                doc, _end = json.JSONDecoder().raw_decode(text, m.end())
            except ValueError:
                continue
            if isinstance(doc, list):
                break
            doc = None
    if isinstance(doc, dict):
        doc = doc.get("data")
    if not isinstance(doc, list):
        return None
    return [e for e in doc if isinstance(e, dict)]


class DxySpider(PiyaoSpider):
    name = "dxy"
    default_start_urls = ["https://file1.dxycdn.com/2020/0130/454/3393874921745912507-115.json"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: set[str] = set()

    def parse(self, response: Response, **kwargs: Any) -> Iterator[DebunkItem]:
        entries = entries_of(response.text)
        if entries is None:
            self.logger.warning("%s holds no rumor list (JSON data[] or window.getIndexRumorList)", response.url)
            self._inc("no_list")
            return
        for entry in entries:
            if self.limit_reached(self.emitted):
                raise CloseSpider("closespider_max_items")
            url = entry_url(entry)
            title = re.sub(r"\s+", " ", _plain(entry.get("title"))).strip()
            if not url or not title:
                self._inc("bad_entry")
                continue
            if url in self._seen:  # the same entry in the JSON feed and the embedded list
                continue
            self._seen.add(url)
            parts = [_plain(entry.get(k)) for k in ("mainSummary", "summary", "body")]
            lines: list[str] = []
            for part in parts:
                if part and part not in lines:
                    lines.append(part)
            self.emitted += 1
            yield DebunkItem(
                url=url,
                title=title,
                text="\n".join(lines),
                source=SOURCE,
                published=None,
                verdict=verdict_of(entry.get("rumorType"), self._stats()),
                editor=None,
                origin=None,
            )
