"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, for the crawler tests.

Raw sockets (one thread per connection, ``Connection: close``) so that a
route can do what a library server would not: reset the connection, hang
past the client's timeout, send less body than its Content-Length, stream
50 MB, lie about the charset. Every request is logged (time, path, headers)
before its route runs.

``hostile_site(server)`` installs the standard hostile mirror: a list page in
the piyao_org_cn structure (``/ld.htm``) linking good articles and one
article-shaped URL per failure kind (see ``HOSTILE``).
"""

from __future__ import annotations

import hashlib
import select
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SITES = Path(__file__).resolve().parents[1] / "fixtures" / "sites"


@dataclass
class Hit:
    t: float
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Ctx:
    """What a route gets: the socket, the request, and per-path state."""

    conn: socket.socket
    method: str
    path: str
    headers: dict[str, str]
    server: HostileServer

    def send(self, data: bytes) -> bool:
        try:
            self.conn.sendall(data)
            return True
        except OSError:
            return False

    def client_gone(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds; True when the client closed the connection."""
        try:
            ready, _, _ = select.select([self.conn], [], [], wait)
            if ready:
                return self.conn.recv(1024) == b""
        except OSError:
            return True
        return False


Route = Callable[[Ctx], None]


def _head(status: int, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 301: "Moved Permanently", 302: "Found", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()] + ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def reply(body: bytes | str = b"", status: int = 200, content_type: str | None = "text/html; charset=utf-8", headers: dict[str, str] | None = None) -> Route:
    data = body.encode("utf-8") if isinstance(body, str) else body

    def route(ctx: Ctx) -> None:
        h = {"Content-Length": str(len(data))}
        if content_type:
            h["Content-Type"] = content_type
        h.update(headers or {})
        ctx.send(_head(status, h) + (b"" if ctx.method == "HEAD" else data))

    return route


def flaky(failures: int, then: Route, status: int = 500) -> Route:
    """Answers ``status`` to the first ``failures`` requests of the path, then like ``then``."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def route(ctx: Ctx) -> None:
        with lock:
            n = seen[ctx.path] = seen.get(ctx.path, 0) + 1
        if n <= failures:
            reply("<html><body>server error</body></html>", status=status)(ctx)
        else:
            then(ctx)

    return route


def reset() -> Route:
    """Resets the connection (RST) without answering."""

    def route(ctx: Ctx) -> None:
        ctx.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ctx.conn.close()

    return route


def hang(seconds: float) -> Route:
    """Answers nothing for ``seconds`` (or until the client gives up), then closes."""

    def route(ctx: Ctx) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ctx.server.stopping.is_set():
            if ctx.client_gone(0.2):
                return

    return route


def truncated(body: bytes, claimed: int) -> Route:
    """Declares Content-Length ``claimed`` and sends only ``body`` (shorter), then closes."""

    def route(ctx: Ctx) -> None:
        ctx.send(_head(200, {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(claimed)}) + body)

    return route


def redirect(location: str, status: int = 302) -> Route:
    return reply(b"", status=status, content_type=None, headers={"Location": location})


def stream(total: int, chunked: bool, chunk: int = 65536) -> Route:
    """Streams ``total`` bytes of HTML (declared up front, or chunked without a length) until the client hangs up."""
    piece = (b"<p>" + "大页面填充".encode("utf-8") * (chunk // 16) + b"</p>\n")[:chunk]

    def route(ctx: Ctx) -> None:
        h = {"Content-Type": "text/html; charset=utf-8"}
        if chunked:
            h["Transfer-Encoding"] = "chunked"
        else:
            h["Content-Length"] = str(total)
        prefix = b"<html><body>"
        if not ctx.send(_head(200, h) + (b"%x\r\n%s\r\n" % (len(prefix), prefix) if chunked else prefix)):
            return
        sent = len(prefix)
        try:
            while sent < total and not ctx.server.stopping.is_set():
                data = piece[: total - sent]
                frame = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
                if not ctx.send(frame):
                    return
                sent += len(data)
            if chunked:
                ctx.send(b"0\r\n\r\n")
        finally:
            ctx.server.streamed[ctx.path] = sent  # bytes sent before the client hung up

    return route


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        try:
            method, target, _version = head[0].split(" ", 2)
        except ValueError:
            return
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        owner = self.server.owner
        path = target.split("?", 1)[0]
        with owner.lock:
            owner.log.append(Hit(time.monotonic(), method, target, headers))
        route = owner.routes.get(path) or owner.default
        try:
            route(Ctx(conn, method, path, headers, owner))
        except OSError:
            pass


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HostileServer


@dataclass
class HostileServer:
    """``with HostileServer() as srv: srv.routes["/x"] = reply(...)``; ``srv.url``, ``srv.log``."""

    routes: dict[str, Route] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)
    streamed: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    default: Route = field(default_factory=lambda: reply("<html><body>not found</body></html>", status=404))
    url: str = ""

    def start(self) -> HostileServer:
        self._tcp = _TCPServer(("127.0.0.1", 0), _Handler)
        self._tcp.owner = self
        self.url = f"http://127.0.0.1:{self._tcp.server_address[1]}"
        threading.Thread(target=self._tcp.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._tcp.shutdown()
        self._tcp.server_close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hits(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.log if h.path.split("?", 1)[0] == path]

    def paths(self) -> set[str]:
        with self.lock:
            return {h.path.split("?", 1)[0] for h in self.log}


# --------------------------------------------------------------------------- pages
def article_path(name: str, day: str = "20250801") -> str:
    """An article URL of the 2023+ generation (the only kind the spider follows), one per name."""
    return f"/{day}/{hashlib.md5(name.encode()).hexdigest()}/c.html"


def article_html(title: str, paragraphs: list[str], *, date: str = "2025-08-01 09:00:00", origin: str = "测试来源", head: str = '<meta charset="utf-8">') -> str:
    """An article page in the piyao_org_cn structure (div.con_tit h2, meta line, div.con_txt)."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        "<!DOCTYPE html>\n<!-- SYNTHETIC TEST PAGE for piyao's crawler tests (hostile server). -->\n"
        f"<html lang=\"zh-CN\"><head>{head}<title>{title}-中国互联网联合辟谣平台</title></head><body>\n"
        '<div class="content"><div class="con_nr"><div class="con_tit">\n'
        f"<h2>{title}</h2>\n<p>来源：{origin}<span>时间：{date}</span></p>\n</div>\n"
        f'<div class="con_txt"><div id="detailContent">\n{body}\n</div></div>\n'
        "</div></div></body></html>\n"
    )


def traditional(html: str) -> str:
    """``article_html``'s page furniture in Traditional characters (for Big5 pages)."""
    for simp, trad in (("测试来源", "測試來源"), ("中国互联网联合辟谣平台", "中國互聯網聯合闢謠平臺"), ("来源", "來源"), ("时间", "時間")):
        html = html.replace(simp, trad)
    return html


def list_html(paths: list[str]) -> str:
    items = "\n".join(f'<li><h2><a href="{p}" aria-arttitle="文章{i}">文章{i}</a></h2></li>' for i, p in enumerate(paths))
    return (
        "<!DOCTYPE html>\n<!-- SYNTHETIC TEST PAGE (hostile server list). -->\n"
        f'<html><head><meta charset="utf-8"><title>联动</title></head><body><ul id="list">\n{items}\n</ul></body></html>\n'
    )


PARAS = [
    "近日，网传一则关于食品安全的消息在社交平台广泛传播，经核实，此事系谣言。",
    "专家表示，该说法没有科学依据，请广大网民不信谣、不传谣。",
]
# Simplified text outside GB2312 (GBK only: 喆 堃 镕) and one character GB18030 needs four bytes for (㐀).
GB18030_TEXT = "本文提到的人名有张喆、王堃和朱镕，以及罕用字㐀，都需要GB18030才能正确编码。"
TRAD_TITLE = "網傳太陽能板釋放有害電磁輻射？謠言！"
TRAD_PARAS = ["國家統計局數據顯示，太陽能板不具備儲電功能，這種說法沒有科學依據。", "專家表示，請廣大網民不信謠、不傳謠。"]

ROBOTS = "User-agent: *\nDisallow: /20250718/\n"


@dataclass
class Site:
    """The hostile mirror: good pages (path → expected title) and one path per failure kind."""

    good: dict[str, str]
    hostile: dict[str, str]  # kind → path
    disallowed: str
    flaky: str


def hostile_site(server: HostileServer) -> Site:
    """Install the standard hostile routes on ``server``."""
    fx = SITES / "piyao_org_cn"
    a1 = "/20250717/ef39a204545b491c8d12d4c1def14519/c.html"
    a2 = "/20250711/bd023518677844abb2d477f29e0a2eaf/c.html"
    good = {
        a1: "为博流量编造谣言，温州公安依法查处一起编造虚假警情案",
        a2: "网传太阳能板释放有害电磁辐射？谣言！",
    }
    r = server.routes
    r[a1] = reply((fx / a1.lstrip("/")).read_bytes())
    r[a2] = reply((fx / a2.lstrip("/")).read_bytes())

    def good_page(name: str, title: str, route_of: Callable[[str], Route] | None = None, **kw: str) -> str:
        path = article_path(name)
        html = article_html(title, PARAS, **kw)
        r[path] = route_of(html) if route_of else reply(html)
        good[path] = title
        return path

    flaky_path = good_page("flaky", "重试后成功：网传喝隔夜水致癌？谣言", lambda h: flaky(1, reply(h)))
    good_page(
        "malformed",
        "标签残缺的页面：网传手机充电时打电话会爆炸？",
        lambda h: reply(h.replace("</p>", "").replace("</div>", "<div><span><b>").replace("</body>", "<p>未闭合 <a href=").replace("<h2>", "<h2><font>") + "\x00<<>>&&"),
    )
    good_page("gbk-as-utf8", "GBK页面谎称UTF-8：网传吃味精致癌？谣言", lambda h: reply(h.replace('<meta charset="utf-8">', "").encode("gbk"), content_type="text/html; charset=utf-8"))
    good_page("gbk-as-latin1", "GBK页面谎称Latin-1：网传微波炉加热食物致癌？谣言", lambda h: reply(h.replace('<meta charset="utf-8">', "").encode("gbk"), content_type="text/html; charset=iso-8859-1"))
    path = article_path("big5-as-utf8")
    r[path] = reply(traditional(article_html(TRAD_TITLE, TRAD_PARAS, head="")).encode("big5"), content_type="text/html; charset=utf-8")
    good[path] = TRAD_TITLE

    hostile: dict[str, str] = {}

    def bad(kind: str, route: Route, name: str | None = None) -> str:
        path = article_path(name or kind)
        r[path] = route
        hostile[kind] = path
        return path

    bad("http_5xx", reply("<html><body>down</body></html>", status=503))
    bad("http_4xx", reply("<html><body>gone</body></html>", status=404))
    bad("connection_reset", reset())
    bad("timeout", hang(30))
    bad("truncated", truncated(article_html("被截断的页面", PARAS).encode("utf-8")[:400], claimed=8000))
    loop_b = article_path("redirect-loop-b")
    loop_a = bad("redirect_loop", redirect(loop_b), "redirect-loop-a")
    r[loop_b] = redirect(loop_a)
    bad("too_large", stream(50 * 1024 * 1024, chunked=True))
    hostile["too_large_declared"] = article_path("too-large-declared")
    r[hostile["too_large_declared"]] = stream(50 * 1024 * 1024, chunked=False)
    bad("parse_error", reply(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, content_type="image/png"))
    damaged = article_html("字节损坏的GBK页面：网传隔夜菜不能吃？", PARAS * 3, head="").encode("gbk")
    cut = damaged.index("专家".encode("gbk"))
    path = bad("decode_error", reply(damaged[:cut] + b"\xff\xff" + damaged[cut:], content_type="text/html; charset=gbk"))
    good[path] = "字节损坏的GBK页面：网传隔夜菜不能吃？"  # stored all the same, with a replacement character

    disallowed = "/20250718/10840b02ee3e430389edee91151e8b3c/c.html"
    r[disallowed] = reply(article_html("robots.txt 禁止抓取的页面", PARAS))
    r["/robots.txt"] = reply(ROBOTS, content_type="text/plain")
    links = [*good, *hostile.values(), disallowed]
    r["/ld.htm"] = reply(list_html(links))
    return Site(good=good, hostile=hostile, disallowed=disallowed, flaky=flaky_path)
