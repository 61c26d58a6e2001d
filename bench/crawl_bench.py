"""Benchmark: the full piyao_org_cn spider pipeline vs a bare Scrapy spider, on one 10,000-page loopback mirror.

Generates a synthetic mirror in the piyao.org.cn structure (list pages of 100
links with "下一页" pagination, article pages of both URL generations), serves
it on 127.0.0.1 from this process, then in one run:

- ``full``: ``python -m scrapy crawl piyao_org_cn`` with the real middlewares
  and StorePipeline into a fresh SQLite store (cleaning, de-duplication, outbox);
- ``bare``: a Scrapy spider that follows the same links and only fetches.

Both use the same Scrapy concurrency and no delay. Prints one JSON line per
crawler and a summary line.

    python bench/crawl_bench.py [--pages 10000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_LIST = 100

ARTICLE = """<!DOCTYPE html>
<!-- SYNTHETIC benchmark page in the structure of www.piyao.org.cn (not a copy of the site). -->
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title></head><body>
<div class="header"><a href="/">首页</a></div>
<div class="content"><div class="con_left left"><div class="con_nr">
<div class="con_tit"><h2>{title}</h2><p>来源：合成基准<span>时间：{date} 10:31:05</span></p></div>
<div class="con_txt"><div id="detailContent">
<p>近日，网传“{topic}”的说法在社交平台传播。经核实，此说法不实。（第{n}号合成基准文章）</p>
<p>专家表示，{topic}的说法缺乏科学依据，公众应通过权威渠道获取信息，不信谣、不传谣。编号{n}的内容仅用于基准测试。</p>
<p>微信扫一扫 分享到：</p>
</div></div></div></div></div>
<div class="footer">合成基准页</div></body></html>
"""

LIST = """<!DOCTYPE html>
<!-- SYNTHETIC benchmark list page. -->
<html lang="zh-CN"><head><meta charset="utf-8"><title>联动</title></head><body>
<ul id="list">{items}</ul>
<div class="page">{next}</div></body></html>
"""

TOPICS = ["隔夜菜致癌", "喝醋软化血管", "微波炉加热有辐射", "5G基站致病", "吃香蕉防癌", "量子波动速读", "酸碱体质", "手机充电时接电话爆炸"]

BARE_SPIDER = """
import scrapy

class Bare(scrapy.Spider):
    name = "bare"

    def __init__(self, start_url=None, **kw):
        super().__init__(**kw)
        self.start_urls = [start_url]

    def parse(self, response):
        for href in response.css("#list > li > h2 > a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_article)
        nxt = response.css("div.page a::attr(href)").get()
        if nxt:
            yield response.follow(nxt, callback=self.parse)

    def parse_article(self, response):
        pass
"""


def build_mirror(root: Path, pages: int) -> None:
    lists = (pages + PER_LIST - 1) // PER_LIST
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    n = 0
    for li in range(lists):
        items = []
        for _ in range(min(PER_LIST, pages - n)):
            n += 1
            topic = TOPICS[n % len(TOPICS)]
            title = f"网传{topic}？谣言！（{n}）"
            if n % 10 == 0:  # a legacy-generation URL now and then
                path = f"2021-04/{(n % 28) + 1:02d}/c_{1211000000 + n}.htm"
            else:
                path = f"2025{(n % 12) + 1:02d}{(n % 28) + 1:02d}/{hashlib.md5(str(n).encode()).hexdigest()}/c.html"
            f = root / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(ARTICLE.format(title=title, topic=topic, n=n, date=f"2025-{(n % 12) + 1:02d}-{(n % 28) + 1:02d}"), "utf-8")
            items.append(f'<li><h2><a href="/{path}" aria-arttitle="{title}">{title}</a></h2></li>')
        name = "ld.htm" if li == 0 else f"ld_{li + 1}.htm"
        nxt = f'<a href="ld_{li + 2}.htm">下一页</a>' if li + 1 < lists else ""
        (root / name).write_text(LIST.format(items="\n".join(items), next=nxt), "utf-8")


class Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({res.returncode}): {res.stderr[-2000:]}")
    return wall, res.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        t0 = time.perf_counter()
        build_mirror(site, args.pages)
        print(f"mirror of {args.pages} articles built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        start = f"http://127.0.0.1:{server.server_address[1]}/ld.htm"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
        common = {
            "PIYAO_CRAWL__DOWNLOAD_DELAY": "0",
            "PIYAO_CRAWL__AUTOTHROTTLE": "false",
            "PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN": str(args.concurrency),
            "PIYAO_CRAWL__PERSIST_JOBS": "false",
            "PIYAO_CRAWL__LOG_LEVEL": "WARNING",
        }
        results = []
        # Full pipeline: the real spider, middlewares and StorePipeline into SQLite.
        data = Path(tmp) / "data"
        env = base_env | common | {"PIYAO_DATA_DIR": str(data)}
        wall, _ = run([sys.executable, "-m", "scrapy", "crawl", "piyao_org_cn", "-a", f"start_url={start}", "-s", f"CONCURRENT_REQUESTS={args.concurrency}"], env, ROOT)
        stored = sqlite3.connect(data / "piyao.db").execute("select count(*) from debunks").fetchone()[0]
        lists = (args.pages + PER_LIST - 1) // PER_LIST
        results.append({"crawler": "full", "pages": args.pages + lists, "articles_stored": stored, "seconds": round(wall, 1), "pages_per_s": round((args.pages + lists) / wall, 1)})
        # Bare: fetch only, same Scrapy settings (from crawlers/settings.py) minus piyao's pipeline.
        spider = Path(tmp) / "bare.py"
        spider.write_text(BARE_SPIDER)
        env = base_env | common | {"PIYAO_DATA_DIR": str(Path(tmp) / "bare-data")}
        wall, _ = run(
            [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"start_url={start}", "-s", "ITEM_PIPELINES={}", "-s", f"CONCURRENT_REQUESTS={args.concurrency}", "-s", "PIYAO_STORE_ENABLED=false"],
            env,
            ROOT,
        )
        results.append({"crawler": "bare", "pages": args.pages + lists, "seconds": round(wall, 1), "pages_per_s": round((args.pages + lists) / wall, 1)})
        server.shutdown()
    for r in results:
        print(json.dumps(r, ensure_ascii=False))
    print(json.dumps({"summary": "crawl_bench", "articles": args.pages, "concurrency": args.concurrency, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "full_vs_bare": round(results[0]["seconds"] / results[1]["seconds"], 2)}))


if __name__ == "__main__":
    main()
