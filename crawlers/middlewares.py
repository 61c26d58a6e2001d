"""Scrapy middlewares for hostile sites: error counts by kind, lying charsets, redirect loops, retry backoff.

Enabled in crawlers/settings.py (DOWNLOADER_MIDDLEWARES). Every failure a
crawl meets is counted in the crawler stats as ``piyao/errors/<kind>``; the
StorePipeline stores those stats in CrawlRun.stats at the end of the run, and
``piyao runs`` shows them. Kinds:

=================== ==========================================================
http_5xx            a final response (after retries) with status 500-599
http_4xx            a final response with status 400-499 (robots.txt excluded)
timeout             DOWNLOAD_TIMEOUT passed (final attempt)
connection_reset    the connection was reset or closed before a full response
connection_refused  nothing listens on the port
dns                 the host name does not resolve
truncated           the body ended before its Content-Length (data loss)
too_large           the download passed DOWNLOAD_MAXSIZE and was cancelled
redirect_loop       a redirect back to a URL of the same redirect chain, or
                    more redirects than REDIRECT_MAX_TIMES
robots_disallowed   a request robots.txt forbids (never sent)
parse_error         the spider's callback raised (signal spider_error)
item_error          an item pipeline raised (signal item_error)
decode_error        no encoding decodes the body without errors
other               any other download exception
=================== ==========================================================

Failures are counted once per request, after RetryMiddleware gave up: a path
that fails once and then succeeds on retry is no error (Scrapy's own
``retry/count`` and ``retry/reason_count/*`` stats count the attempts).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urljoin, urlsplit

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Request, Response, TextResponse

from crawlers.extract import detect_encoding

logger = logging.getLogger(__name__)

ERROR_PREFIX = "piyao/errors/"
ERROR_KINDS = (
    "http_5xx",
    "http_4xx",
    "timeout",
    "connection_reset",
    "connection_refused",
    "dns",
    "truncated",
    "too_large",
    "redirect_loop",
    "robots_disallowed",
    "parse_error",
    "item_error",
    "decode_error",
    "other",
)


def count_error(stats: Any, kind: str, n: int = 1) -> None:
    stats.inc_value(ERROR_PREFIX + kind, n)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes, and the reasons Twisted's ResponseFailed wraps."""
    out: list[BaseException] = []
    todo = [exc]
    while todo and len(out) < 20:
        e = todo.pop(0)
        if e is None or e in out:
            continue
        out.append(e)
        todo.append(e.__cause__)  # type: ignore[arg-type]
        for reason in getattr(e, "reasons", None) or []:  # twisted.web._newclient.ResponseFailed
            todo.append(getattr(reason, "value", reason))
    return out


def classify_exception(exc: BaseException) -> str | None:
    """The error kind of a download exception; None for requests dropped on purpose (not errors)."""
    from scrapy import exceptions as sx
    from twisted.internet import defer
    from twisted.internet import error as tx

    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if isinstance(exc, IgnoreRequest):
        return "robots_disallowed" if "robots.txt" in text else None
    if "_DataLoss" in names or isinstance(exc, getattr(sx, "ResponseDataLossError", ())) or "dataloss" in text.replace(" ", ""):
        return "truncated"
    timeouts: tuple[type[BaseException], ...] = (tx.TimeoutError, defer.TimeoutError, TimeoutError, asyncio.TimeoutError)
    if isinstance(exc, getattr(sx, "DownloadTimeoutError", ())) or isinstance(exc, timeouts):
        return "timeout"
    if isinstance(exc, getattr(sx, "DownloadCancelledError", ())) or isinstance(exc, defer.CancelledError):
        # Scrapy cancels a download in flight only when it passes DOWNLOAD_MAXSIZE.
        return "too_large"
    if isinstance(exc, getattr(sx, "DownloadConnectionRefusedError", ())) or isinstance(exc, (tx.ConnectionRefusedError, ConnectionRefusedError)):
        return "connection_refused"
    if isinstance(exc, getattr(sx, "CannotResolveHostError", ())) or isinstance(exc, tx.DNSLookupError):
        return "dns"
    if names & {"ConnectionLost", "ConnectionDone", "ConnectionAborted", "ResponseNeverReceived", "ConnectionResetError", "BrokenPipeError"}:
        return "connection_reset"
    if isinstance(exc, getattr(sx, "DownloadFailedError", ())) or isinstance(exc, (tx.ConnectError, ConnectionError)):
        return "connection_reset"
    return "other"


def _is_robots(request: Request) -> bool:
    return urlsplit(request.url).path == "/robots.txt"


class ErrorStatsMiddleware:
    """Counts each request's final failure as ``piyao/errors/<kind>`` (downloader middleware + signals).

    Sits on the engine side of RetryMiddleware (priority below 550), so it sees
    a request's outcome after the retries; spider and item errors come from
    the spider_error and item_error signals, dropped requests (duplicates, a
    full scheduler) from request_dropped (``piyao/requests_dropped``, not an error).
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> ErrorStatsMiddleware:
        mw = cls(crawler)
        crawler.signals.connect(mw.spider_error, signal=signals.spider_error)
        crawler.signals.connect(mw.item_error, signal=signals.item_error)
        crawler.signals.connect(mw.request_dropped, signal=signals.request_dropped)
        return mw

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        if response.status >= 500:
            count_error(self.stats, "http_5xx")
        elif response.status >= 400 and not _is_robots(request):
            count_error(self.stats, "http_4xx")
        return response

    def process_exception(self, request: Request, exception: BaseException, spider: Any = None) -> None:
        kind = classify_exception(exception)
        if kind is not None:
            count_error(self.stats, kind)
            if kind == "other":
                self.stats.inc_value(f"{ERROR_PREFIX}other/{type(exception).__name__}")
        return None

    def spider_error(self, failure: Any, response: Any = None, spider: Any = None) -> None:
        count_error(self.stats, "parse_error")

    def item_error(self, item: Any = None, response: Any = None, spider: Any = None, failure: Any = None) -> None:
        count_error(self.stats, "item_error")

    def request_dropped(self, request: Any = None, spider: Any = None) -> None:
        self.stats.inc_value("piyao/requests_dropped")


class RedirectLoopMiddleware:
    """Stops a redirect chain that comes back to one of its own URLs (counted as redirect_loop).

    Sits on the downloader side of RedirectMiddleware (priority above 600). A
    chain longer than REDIRECT_MAX_TIMES is counted as redirect_loop too (and
    RedirectMiddleware discards it).
    """

    def __init__(self, crawler: Any) -> None:
        self.stats = crawler.stats
        self.max_times = crawler.settings.getint("REDIRECT_MAX_TIMES", 20)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RedirectLoopMiddleware:
        if not crawler.settings.getbool("REDIRECT_ENABLED", True):
            raise NotConfigured("REDIRECT_ENABLED is false")
        return cls(crawler)

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        if response.status not in (301, 302, 303, 307, 308) or b"Location" not in response.headers:
            return response
        if request.meta.get("dont_redirect") or response.status in request.meta.get("handle_httpstatus_list", ()):
            return response
        location = (response.headers.get(b"Location") or b"").decode("latin-1").strip()
        target = urljoin(request.url, location).split("#", 1)[0]
        chain = [u.split("#", 1)[0] for u in [*request.meta.get("redirect_urls", []), request.url]]
        if target in chain:
            count_error(self.stats, "redirect_loop")
            logger.warning("redirect loop: %s → %s (chain %s)", request.url, target, " → ".join(chain))
            raise IgnoreRequest(f"redirect loop at {request.url}")
        if request.meta.get("redirect_times", 0) >= self.max_times:
            count_error(self.stats, "redirect_loop")
        return response


_BINARY_MAGIC = (b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"RIFF", b"\x00\x00\x01\x00")
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream", "application/pdf", "application/zip", "application/x-gzip", "application/gzip")


def _is_binary(response: Response) -> bool:
    """A body that is not text whatever its URL says: a binary Content-Type, or a file signature."""
    ctype = (response.headers.get(b"Content-Type") or b"").decode("latin-1").strip().lower()
    return ctype.startswith(_BINARY_TYPES) or response.body[:8].startswith(_BINARY_MAGIC)


class EncodingMiddleware:
    """Decodes Chinese pages right when the Content-Type charset or <meta charset> lies.

    Scrapy picks a response's encoding from the header, then the body's
    declaration, then inference (w3lib). This middleware checks that choice:
    when the body does not decode cleanly into plausible text with it while
    utf-8, gb18030 or big5 (or, last, charset-normalizer's guess) does, the
    response is rebuilt with that encoding (same bytes, explicit encoding, so
    URLs keep being encoded as the site expects). Big5 pages stay Traditional.
    Counts ``piyao/encoding/corrected`` and, when no encoding decodes every
    byte, ``piyao/errors/decode_error``.
    """

    def __init__(self, crawler: Any) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> EncodingMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        if not isinstance(response, TextResponse) or not response.body or response.status >= 300:
            return response
        if _is_binary(response):
            # Scrapy types a response by its URL too: an image served at ".../c.html" would be parsed as HTML.
            self.stats.inc_value("piyao/responses/binary")
            return Response(**{attr: getattr(response, attr) for attr in Response.attributes})
        try:
            from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding

            header = http_content_type_encoding((response.headers.get(b"Content-Type") or b"").decode("latin-1"))
            meta = html_body_declared_encoding(response.body)
            choice = detect_encoding(response.body, response.encoding, also_declared=(header, meta))
        except Exception:  # noqa: BLE001 - a detection failure must not lose the page
            logger.exception("encoding check failed for %s", response.url)
            return response
        if not choice.clean:
            count_error(self.stats, "decode_error")
            logger.warning("%s: undecodable bytes; decoded as %s with replacements", response.url, choice.encoding)
        if not choice.changed:
            return response
        self.stats.inc_value("piyao/encoding/corrected")
        self.stats.inc_value(f"piyao/encoding/corrected/{response.encoding}_to_{choice.encoding}")
        logger.info("%s: declared %s (header %s, meta %s) but decoded as %s (%s)", response.url, response.encoding, header, meta, choice.encoding, choice.reason)
        return response.replace(encoding=choice.encoding)


class RetryBackoffMiddleware:
    """Waits before sending a retry: PIYAO_RETRY_BACKOFF × 2^(n-1) seconds (n: the retry number).

    At most PIYAO_RETRY_BACKOFF_MAX seconds. Scrapy's RetryMiddleware resends at
    once; a server answering 500 or timing out is given time to recover.
    Settings (Scrapy settings, e.g. ``-s PIYAO_RETRY_BACKOFF=0.5``): defaults 1.0 and 60.
    """

    def __init__(self, base: float, cap: float, stats: Any) -> None:
        self.base = base
        self.cap = cap
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> RetryBackoffMiddleware:
        base = crawler.settings.getfloat("PIYAO_RETRY_BACKOFF", 1.0)
        if not crawler.settings.getbool("RETRY_ENABLED", True) or base <= 0:
            raise NotConfigured("no retries or no backoff")
        return cls(base, crawler.settings.getfloat("PIYAO_RETRY_BACKOFF_MAX", 60.0), crawler.stats)

    def delay_for(self, retry_times: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, retry_times - 1))

    async def process_request(self, request: Request, spider: Any = None) -> None:
        n = int(request.meta.get("retry_times", 0) or 0)
        if n <= 0:
            return None
        delay = self.delay_for(n)
        self.stats.inc_value("piyao/retry_backoff_seconds", delay)
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        from scrapy.utils.defer import maybe_deferred_to_future

        await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))
        return None
