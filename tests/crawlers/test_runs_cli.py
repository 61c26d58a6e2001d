"""`piyao runs` (crawl runs with errors by kind) and `piyao crawl --list`."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from pipeline import cli
from store.db import open_store
from store.models import CrawlRun


def _store_runs(data_dir) -> None:
    store = open_store(f"sqlite:///{data_dir / 'piyao.db'}")
    t0 = dt.datetime(2025, 7, 1, 8, 0, 0)
    try:
        with store.session() as s:
            s.add_all([
                CrawlRun(spider="piyao_org_cn", started_at=t0, finished_at=t0 + dt.timedelta(seconds=42.5), status="finished",
                         pages=13, items=8, errors=3, new_claims=0, new_debunks=8,
                         stats={"piyao/errors/timeout": 1, "piyao/errors/http_5xx": 2, "piyao/errors/other/ValueError": 1,
                                "piyao/new_debunks": 8, "log_count/ERROR": 3}),
                CrawlRun(spider="claim_feed", started_at=t0 + dt.timedelta(hours=1), finished_at=t0 + dt.timedelta(hours=1, seconds=5),
                         status="finished", pages=2, items=4, errors=0, new_claims=4, new_debunks=0, stats={}),
                CrawlRun(spider="piyao_org_cn", started_at=t0 + dt.timedelta(hours=2), finished_at=None, status="running", stats={}),
            ])  # fmt: skip
            s.commit()
    finally:
        store.close()


def test_runs_json_newest_first_with_errors_by_kind(tmp_path) -> None:
    _store_runs(tmp_path)
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "runs", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.strip()]
    assert [r["spider"] for r in rows] == ["piyao_org_cn", "claim_feed", "piyao_org_cn"]
    assert [r["status"] for r in rows] == ["running", "finished", "finished"]
    oldest = rows[-1]
    assert oldest["duration_s"] == 42.5 and oldest["started"] == "2025-07-01 08:00:00"
    assert (oldest["pages"], oldest["items"], oldest["new_claims"], oldest["new_debunks"]) == (13, 8, 0, 8)
    assert oldest["errors"] == 3 and oldest["errors_by_kind"] == {"http_5xx": 2, "timeout": 1}
    assert rows[0]["duration_s"] is None and rows[0]["errors"] == 0 and rows[0]["errors_by_kind"] == {}
    assert rows[1]["new_claims"] == 4


def test_runs_limit_spider_and_text(tmp_path) -> None:
    _store_runs(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "runs", "--json", "--limit", "1", "--spider", "piyao_org_cn"], catch_exceptions=False)
    assert [json.loads(line)["status"] for line in res.output.splitlines()] == ["running"]
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "runs", "--spider", "piyao_org_cn"], catch_exceptions=False)
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("#3 piyao_org_cn") and lines[1].startswith("#1 piyao_org_cn")
    assert "42.5s" in lines[1] and "errors 3 (http_5xx 2, timeout 1)" in lines[1] and "new debunks 8" in lines[1]
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "runs", "--spider", "nope"], catch_exceptions=False)
    assert res.exit_code == 0 and "no crawl runs" in res.output


def test_runs_on_an_empty_store(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "runs", "--json"], catch_exceptions=False)
    assert res.exit_code == 0 and res.output.strip() == ""


def test_crawl_list_prints_spider_names_without_crawling(tmp_path) -> None:
    from scrapy.settings import Settings as ScrapySettings
    from scrapy.spiderloader import SpiderLoader

    from crawlers.settings import scrapy_settings
    from settings import load_settings

    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "crawl", "--list"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    names = res.output.split()
    expected = sorted(SpiderLoader.from_settings(ScrapySettings(scrapy_settings(load_settings(None, environ={})))).list())
    assert names == expected and {"piyao_org_cn", "claim_feed"} <= set(names)
    assert not (tmp_path / "piyao.db").exists()  # no store opened, nothing crawled
    assert not (tmp_path / "crawl").exists()
