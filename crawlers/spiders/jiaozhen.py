"""腾讯较真 (vp.fact.qq.com): the JSON list APIs and the article pages they point to.

List APIs (JSON, or JSONP when called with ``callback=``; the wrapper is stripped):

- ``/loadmore?artnum=0&page=N`` (2020–2021, 0-based pages): ``{"content": [{id, title,
  date, result 真|假|疑, explain, markstyle, abstract, author, authordesc, tag, ...}]}``.
  The live API later wanted a DES ``token`` parameter (not generated here: a
  ``token=`` already in the start URL is kept on every page).
- ``/searchresult?title=KW&num=N``: ``{code, total, content: [{_source: {id, title,
  result "假-谣言", date, author, authordesc, abstract, ...}}]}``; ``num`` is advanced
  by the page size while it stays under ``total``.
- ``/api/article/list?page=N`` (2022–2024): ``{code, data: {list: [{id, title, explain,
  date, abstract, Author: {name, desc}}]}}``.

A page is followed by the next one only when it brought an article id not seen
before, so an API that ignores the page parameter cannot loop.

Each entry's article page ``/article?id=<id>`` becomes a DebunkItem. The 2020
page: title ``div.title > h1``, claim ``div.title > p`` (流行说法), verdict
``span.mark_title.{fake|doubt|true}_mark`` (假/疑/真) with ``span.mark_text`` (the
finer label), points ``div.check_content_points li`` (``span.point_num`` dropped),
writer ``div.check_content_writer`` (查证者：NAME<span>description</span>), date and
origin in ``div.check_content_bottom`` (时间 : / 来源 :), body ``div.question.text``.
The 2022+ Next.js page is read from ``script#__NEXT_DATA__`` →
``props.pageProps.initialState``. When an article page answers with an HTTP
error, the item is built from the list entry alone (title, abstract, date,
verdict). Structure: the shared structure notes, _structure_notes/jiaozhen_vp_fact_qq.json;
the mirror in tests/fixtures/sites/jiaozhen/ holds real list responses and
synthetic article pages around real fragments (see its README.md).

Verdicts: the finer label (``explain``, or the part after "-" in searchresult's
``result``) decides, through ``EXPLAIN_VERDICTS``. An unknown label gives no
verdict (``None``) and counts ``piyao/jiaozhen/verdict_unknown``; an entry with no
finer label at all falls back on the coarse ``result``/``markstyle`` only where
that is unambiguous (假 → rumor, 真 → credible; 疑 → None).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError

from classifier.labels import (
    VERDICT_CREDIBLE,
    VERDICT_MISLEADING,
    VERDICT_PSEUDOSCIENCE,
    VERDICT_RUMOR,
    VERDICT_UNPROVEN,
)
from crawlers.extract import html_to_text, parse_cn_date
from crawlers.items import DebunkItem
from crawlers.spiders._base import PiyaoSpider

SOURCE = "腾讯较真"
STAT = "piyao/jiaozhen/"

# The platform's finer labels (``explain`` / ``mark_text``) → piyao verdict codes.
# Every label seen in the real data (three independent captures: Deathcup/python-spider-covid19
# data.csv n=397, Sakura-del/Rumors_of_COVID_19 n=481, IzabelWang/rumor_breaker article pages),
# with the coarse result it always comes with:
EXPLAIN_VERDICTS: dict[str, str] = {
    # 假 (markstyle fake)
    "谣言": VERDICT_RUMOR,  # false claims of fact, e.g. 成都青白江区10月底开展全员核酸检测 (official denial)
    "假新闻": VERDICT_RUMOR,  # fabricated/misread news, e.g. 印度南部新冠肺炎大爆发，几十人确诊数千人隔离
    "伪科学": VERDICT_PSEUDOSCIENCE,  # e.g. 鱼腥草可以预防和治疗新型冠状病毒肺炎, 花岗岩能预防新冠肺炎感染
    "伪常识": VERDICT_PSEUDOSCIENCE,  # false folk "common sense", e.g. 香囊可以预防新型冠状病毒
    # 疑 (markstyle doubt)
    "有失实": VERDICT_MISLEADING,  # partly untrue, e.g. 研究发现两成新冠患者会在3个月内患上精神病
    "分情况": VERDICT_MISLEADING,  # true only under conditions the claim omits, e.g. 核酸检测前不能喝酒
    "尚无定论": VERDICT_UNPROVEN,  # evidence insufficient, e.g. 灵芝可以预防新型冠状病毒
    "存在争议": VERDICT_UNPROVEN,  # disputed, e.g. 艾叶和艾灸可以杀毒除菌 (“目前没有充分证据”)
    # 真 (markstyle true)
    "确有此事": VERDICT_CREDIBLE,  # true event, e.g. 2月17日起至疫情防控结束全国高速所有车免费通行
    "确实如此": VERDICT_CREDIBLE,  # true statement, e.g. 99.7%的无水乙醇可以稀释到75%后作消毒用
}
# The coarse result / markstyle, used only when an entry carries no finer label.
RESULT_VERDICTS: dict[str, str | None] = {
    "假": VERDICT_RUMOR,
    "fake": VERDICT_RUMOR,
    "真": VERDICT_CREDIBLE,
    "true": VERDICT_CREDIBLE,
    "疑": None,  # covers 有失实/分情况 (misleading) as well as 尚无定论/存在争议 (unproven)
    "doubt": None,
}
MARK_CLASSES = {"fake_mark": "fake", "doubt_mark": "doubt", "true_mark": "true"}

JSONP = re.compile(r"^\s*(?:/\*\*/\s*)?[A-Za-z_$][\w$.]*\s*\(\s*(?P<body>.*?)\s*\)\s*;?\s*$", re.S)
ARTICLE_ID = re.compile(r"^[0-9A-Za-z_-]{6,64}$")
WRITER = re.compile(r"^\s*(?:查证者|作者|编辑)\s*[:：]\s*")
BOTTOM_TIME = re.compile(r"时间\s*[:：]\s*(.+)")
BOTTOM_SOURCE = re.compile(r"来源\s*[:：]\s*(.+)")
CLAIM_PREFIX = re.compile(r"^\s*(?:流行说法|流传说法)\s*[:：]\s*")


def strip_jsonp(text: str) -> Any:
    """The JSON value of a JSON or JSONP body (``jsonp12({...})``, ``callback("...")``)."""
    text = (text or "").strip().lstrip("\ufeff")
    if text and text[0] not in "{[":
        m = JSONP.match(text)
        if m:
            text = m.group("body")
    value = json.loads(text)
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):  # callback("{...}")
        value = json.loads(value)
    return value


def split_result(result: Any, explain: Any = None) -> tuple[str, str]:
    """(coarse result, finer label): ``("假-谣言", None)`` → ``("假", "谣言")``."""
    result = str(result or "").strip()
    explain = str(explain or "").strip()
    if "-" in result and not explain:
        result, explain = (part.strip() for part in result.split("-", 1))
    return result, explain


def verdict_of(explain: Any, result: Any = None, stats: Any = None) -> str | None:
    """piyao verdict code of a 较真 label; None (and a stat) for a label not in ``EXPLAIN_VERDICTS``."""
    result, explain = split_result(result, explain)
    if explain:
        code = EXPLAIN_VERDICTS.get(explain)
        if code is None and stats is not None:
            stats.inc_value(STAT + "verdict_unknown")
            stats.inc_value(STAT + "verdict_unknown/" + explain)
        return code
    if result:
        if result not in RESULT_VERDICTS and stats is not None:
            stats.inc_value(STAT + "verdict_unknown")
            stats.inc_value(STAT + "verdict_unknown/" + result)
        return RESULT_VERDICTS.get(result)
    return None


def _one_line(html: str | None) -> str:
    return re.sub(r"\s+", " ", html_to_text(html or "")).strip()


def _entries(doc: Any) -> tuple[str, list[dict[str, Any]], int | None]:
    """(api kind, normalised entries, total) of a list response."""
    if isinstance(doc, list):
        raw, kind, total = doc, "loadmore", None
    elif isinstance(doc, dict):
        data = doc.get("data")
        if isinstance(data, dict) and isinstance(data.get("list"), list):
            raw, kind, total = data["list"], "api", None
        else:
            raw, kind = doc.get("content") or [], "loadmore"
            total = doc.get("total") if isinstance(doc.get("total"), int) else None
    else:
        return "unknown", [], None
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("_source"), dict):  # searchresult hit
            kind = "searchresult"
            entry = dict(entry["_source"], id=entry["_source"].get("id") or entry.get("_id"))
        author, authordesc = entry.get("author"), entry.get("authordesc")
        if isinstance(entry.get("Author"), dict):  # /api/article/list
            author, authordesc = entry["Author"].get("name"), entry["Author"].get("desc")
        result, explain = split_result(entry.get("result") or entry.get("markstyle"), entry.get("explain"))
        out.append(
            {
                "id": str(entry.get("id") or "").strip(),
                "title": str(entry.get("title") or "").strip(),
                "date": entry.get("date") or entry.get("updatedAt"),
                "result": result,
                "explain": explain,
                "abstract": entry.get("abstract"),
                "author": str(author or "").strip() or None,
                "authordesc": str(authordesc or "").strip() or None,
            }
        )
    return kind, out, total


def _with_param(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def _abstract_text(abstract: Any) -> str:
    if isinstance(abstract, list):  # Next.js: [{content}]
        abstract = "\n".join(str(a.get("content") if isinstance(a, dict) else a) for a in abstract)
    text = str(abstract or "")
    if not text.strip():
        return ""
    if "<" in text or "&" in text:
        return html_to_text(text)
    return "\n".join(ln.strip() for ln in text.split("\n") if ln.strip())


def _editor_from_list(entry: dict[str, Any]) -> str | None:
    """The list's ``author`` names the checker, except where it merely repeats ``authordesc``."""
    author = entry.get("author")
    if author and author != entry.get("authordesc") and len(author) <= 40:
        return author
    return None


class JiaozhenSpider(PiyaoSpider):
    name = "jiaozhen"
    default_start_urls = ["https://vp.fact.qq.com/loadmore?artnum=0&page=0"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scheduled: set[str] = set()  # article ids requested
        self._pending: set[str] = set()  # article ids requested and not answered yet

    def start_requests(self) -> Iterator[scrapy.Request]:  # list APIs want the site's Referer
        for url in self.start_urls:
            yield self._list_request(url)

    async def start(self) -> Any:  # Scrapy ≥ 2.13
        for req in self.start_requests():
            yield req

    def _list_request(self, url: str) -> scrapy.Request:
        parts = urlsplit(url)
        referer = urlunsplit((parts.scheme, parts.netloc, "/home", "", ""))
        # piyao_list: a list page, always fetched (crawlers/seen.py skips recently seen detail pages only).
        return scrapy.Request(url, callback=self.parse, headers={"Referer": referer}, dont_filter=True, meta={"piyao_list": True})

    # List APIs ---------------------------------------------------------------
    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        try:
            doc = strip_jsonp(response.text)
        except ValueError:
            self.logger.warning("%s is not a JSON/JSONP list response", response.url)
            self._inc("bad_list")
            return
        if isinstance(doc, dict) and doc.get("code") not in (None, 0, "0"):
            self.logger.warning("%s answered code %r (an invalid or missing token?)", response.url, doc.get("code"))
            self._inc("api_error")
            return
        kind, entries, total = _entries(doc)
        new = 0
        for entry in entries:
            if not entry["id"] or not ARTICLE_ID.match(entry["id"]):
                self._inc("bad_entry")
                continue
            if entry["id"] in self._scheduled:
                continue
            if self.limit_reached(self.emitted + len(self._pending)):
                break
            new += 1
            self._scheduled.add(entry["id"])
            self._pending.add(entry["id"])
            url = response.urljoin("/article?" + urlencode({"id": entry["id"]}))
            yield scrapy.Request(
                url,
                callback=self.parse_article,
                errback=self.article_failed,
                cb_kwargs={"entry": entry},
            )
        if not new or self.limit_reached(self.emitted + len(self._pending)):
            return
        nxt = self._next_page(response.url, kind, len(entries), total)
        if nxt:
            yield self._list_request(nxt)

    def _next_page(self, url: str, kind: str, count: int, total: int | None) -> str | None:
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if kind == "searchresult" or "num" in query:
            try:
                num = int(query.get("num") or 0)
            except ValueError:
                return None
            if total is not None and num + count >= total:
                return None
            return _with_param(url, num=num + count)
        try:
            page = int(query.get("page") or (1 if kind == "api" else 0))
        except ValueError:
            return None
        return _with_param(url, page=page + 1)

    # Articles ------------------------------------------------------------------
    def _done(self, entry: dict[str, Any]) -> None:
        self._pending.discard(entry.get("id"))

    def article_failed(self, failure: Any) -> Iterator[DebunkItem]:
        entry = failure.request.cb_kwargs.get("entry") or {}
        self._done(entry)
        if not failure.check(HttpError):  # robots.txt, DNS, timeouts: nothing to say about the article
            return
        self.logger.info("article page %s failed (%s): item from the list entry", failure.request.url, failure.value)
        if self.limit_reached(self.emitted):
            return
        text = _abstract_text(entry.get("abstract"))
        if not entry.get("title") and not text:
            return
        self._inc("list_only_items")
        self.emitted += 1
        yield DebunkItem(
            url=failure.request.url,
            title=entry.get("title") or "",
            text=text,
            source=SOURCE,
            published=parse_cn_date(entry.get("date")),
            verdict=verdict_of(entry.get("explain"), entry.get("result"), self._stats()),
            editor=_editor_from_list(entry),
            origin=None,
        )

    def parse_article(self, response: Response, entry: dict[str, Any] | None = None) -> Iterator[DebunkItem]:
        entry = entry or {}
        self._done(entry)
        if self.limit_reached(self.emitted):
            raise CloseSpider("closespider_max_items")
        item = self._legacy_article(response, entry) or self._nextjs_article(response, entry)
        if item is None:
            self.logger.warning("no article content at %s", response.url)
            self._inc("empty_article")
            return
        self.emitted += 1
        yield item

    def _legacy_article(self, response: Response, entry: dict[str, Any]) -> DebunkItem | None:
        points_sel = response.css("div.check_content_points li")
        body_html = response.css("div.question.text").get() or response.css("div.question").get() or ""
        title = _one_line(response.css("div.title > h1").get()) or _one_line(response.css("div.title h1").get())
        if not (title or points_sel or body_html):
            return None
        title = title or entry.get("title") or _one_line(response.css("title").get())
        claim = CLAIM_PREFIX.sub("", _one_line(response.css("div.title > p").get()))
        mark = response.css("span.mark_total span.mark_title") or response.css("span.mark_title")
        result = _one_line(mark[0].get()) if mark else ""
        if not result and mark:
            classes = (mark[0].attrib.get("class") or "").split()
            result = next((MARK_CLASSES[c] for c in classes if c in MARK_CLASSES), "")
        explain = _one_line(response.css("span.mark_total span.mark_text, span.mark_text").get())
        if not (result or explain):
            result, explain = entry.get("result") or "", entry.get("explain") or ""
        points = []
        for li in points_sel:
            parts = li.xpath("./node()[not(self::span[contains(concat(' ', normalize-space(@class), ' '), ' point_num ')])]")
            line = _one_line("<p>" + "".join(p.get() for p in parts) + "</p>")
            if line:
                points.append(line)
        writer_sel = response.css("div.check_content_writer")
        editor = None
        if writer_sel:
            own = " ".join(writer_sel[0].xpath("./text()").getall())
            name = WRITER.sub("", re.sub(r"\s+", " ", own)).strip()
            editor = name or None
        editor = editor or _editor_from_list(entry)
        published = origin = None
        for span in response.css("div.check_content_bottom span"):
            line = _one_line(span.get())
            t, s = BOTTOM_TIME.search(line), BOTTOM_SOURCE.search(line)
            if t and published is None:
                published = parse_cn_date(t.group(1))
            if s and origin is None:
                origin = s.group(1).strip() or None
        published = published or parse_cn_date(entry.get("date"))
        lines = []
        if claim:
            lines.append("流行说法：" + claim)
        if points:
            lines.append("查证要点：")
            lines.extend(points)
        body = html_to_text(body_html)
        if body:
            lines.append(body)
        text = "\n".join(lines).strip() or _abstract_text(entry.get("abstract"))
        return DebunkItem(
            url=response.url,
            title=title,
            text=text,
            source=SOURCE,
            published=published,
            verdict=verdict_of(explain, result, self._stats()),
            editor=editor,
            origin=origin,
        )

    def _nextjs_article(self, response: Response, entry: dict[str, Any]) -> DebunkItem | None:
        raw = response.css("script#__NEXT_DATA__::text").get()
        if not raw:
            return None
        try:
            state = json.loads(raw)["props"]["pageProps"]["initialState"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(state, dict):
            return None
        title = _one_line(str(state.get("title") or "")) or entry.get("title") or ""
        lines = []
        claim = _one_line(str(state.get("rumor") or ""))
        if claim:
            lines.append("流传说法：" + claim)
        points = _abstract_text(state.get("abstract"))
        if points:
            lines.extend(["查证要点：", points])
        body = html_to_text(str(state.get("content") or ""))
        if body:
            lines.append(body)
        author = state.get("author")
        if isinstance(author, dict):
            author = author.get("name")
        explain = state.get("explain") or entry.get("explain")
        result = entry.get("result") or state.get("markstyle")
        return DebunkItem(
            url=response.url,
            title=title,
            text="\n".join(lines).strip(),
            source=SOURCE,
            published=parse_cn_date(state.get("date") or state.get("createdAt")) or parse_cn_date(entry.get("date")),
            verdict=verdict_of(explain, result, self._stats()),
            editor=(str(author).strip() or None) if author else _editor_from_list(entry),
            origin=None,
        )
