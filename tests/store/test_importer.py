"""Importing debunks from CSV and JSONL files: counts, cleaning, idempotence, outbox, the CLI."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from store.importer import ImportFileError, import_debunks, read_csv, repeated_lines
from store.models import AuditEvent, Debunk, IndexOutbox

REPO = Path(__file__).resolve().parents[2]
CSV = REPO / "tests" / "fixtures" / "debunks" / "articles.csv"
JSONL = REPO / "tests" / "fixtures" / "debunks" / "articles.jsonl"
PROMO = "本文经科普中国专家审核，转载请注明出处并保留原文链接"
FURNITURE = ("微信扫一扫", "getElementById", "功能介绍", "微信号", "往期回顾", "分享到朋友圈", "关注该公众号", "var msg_title", PROMO)


def _count(store, model) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _debunks(store) -> list[Debunk]:
    with store.session() as s:
        return list(s.scalars(select(Debunk).order_by(Debunk.id)))


def _flat(text: str) -> str:
    """Rich wraps long lines when stdout is not a terminal: compare with whitespace collapsed."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- reading
def test_csv_reader_handles_bom_and_any_column_order() -> None:
    rows = list(read_csv(CSV))
    assert len(rows) == 7
    assert all(isinstance(r, dict) for r in rows)
    first = rows[0]
    assert set(first) == {"title", "url", "date", "text"}
    assert first["title"] == "经常吃腐乳会致癌？"
    assert first["url"].startswith("http://www.xinhuanet.com.cn/food/")
    assert first["date"] == "2021-03-08"
    assert "\n" in first["text"]  # quoted multi-line cell kept whole
    assert rows[6]["url"] == ""


def test_csv_missing_url_column_is_a_file_error(tmp_path: Path) -> None:
    bad = tmp_path / "nourl.csv"
    bad.write_text("\ufefftitle,text\n喝醋能软化血管吗？,没有证据\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"missing column\(s\) url"):
        list(read_csv(bad))


def test_chinese_column_names_and_gb18030(tmp_path: Path, store) -> None:
    path = tmp_path / "gbk.csv"
    text = "正文,标题,链接,日期\n\"隔夜菜只要冷藏得当并彻底加热，一般不会因为亚硝酸盐而致癌。\",隔夜菜会致癌吗,https://example.org/gbk/1,2023年5月6日\n"
    path.write_bytes(text.encode("gb18030"))
    report = import_debunks(store, [path])
    assert report.imported == 1
    (d,) = _debunks(store)
    assert d.title == "隔夜菜会致癌吗"
    assert d.published.isoformat() == "2023-05-06"
    assert d.source == "gbk"


# --------------------------------------------------------------------------- the fixture cases
def test_csv_fixture_counts(store) -> None:
    report = import_debunks(store, [CSV])
    assert report.as_dict() == {
        "files": 1,
        "rows": 7,
        "imported": 4,
        "updated": 1,
        "unchanged": 0,
        "rejected": {"bad_url": 1, "near_duplicate": 1},
    }
    rows = _debunks(store)
    assert len(rows) == 4
    assert [d.title for d in rows] == ["经常吃腐乳会致癌？", "喝醋能软化血管吗？", "大蒜炝锅真的致癌吗？", "电磁炉辐射真的会致癌吗？"]
    # No source column: the file name is the source. Dates come from the date column.
    assert {d.source for d in rows} == {"articles"}
    assert [d.published.isoformat() for d in rows] == ["2021-03-08", "2018-10-12", "2018-09-14", "2014-04-08"]
    # The near duplicate under another URL was not stored.
    assert not any("mirror.example.org" in d.url for d in rows)


def test_duplicate_url_same_title_updates_the_row(store) -> None:
    import_debunks(store, [CSV])
    vinegar = [d for d in _debunks(store) if d.title == "喝醋能软化血管吗？"]
    assert len(vinegar) == 1
    assert "【更新】专家补充" in vinegar[0].text


def test_near_duplicate_is_rejected_against_an_earlier_import(store, tmp_path: Path) -> None:
    import_debunks(store, [JSONL])
    original = next(d for d in _debunks(store) if d.title.startswith("烫伤后敷面粉"))
    copy = tmp_path / "copy.jsonl"
    copy.write_text(
        json.dumps({"title": original.title, "url": "https://copycat.example.com/a/1", "text": original.text + "。"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    report = import_debunks(store, [copy])
    assert report.rejected == {"near_duplicate": 1}
    assert report.imported == 0
    assert _count(store, Debunk) == 6


def test_jsonl_fixture_counts_and_sources(store) -> None:
    report = import_debunks(store, [JSONL])
    assert report.as_dict() == {
        "files": 1,
        "rows": 7,
        "imported": 6,
        "updated": 0,
        "unchanged": 0,
        "rejected": {"bad_json": 1},
    }
    sources = sorted({d.source for d in _debunks(store)})
    assert sources == ["公众号-科学辟谣", "公众号-辟谣助手", "微博辟谣", "果壳网-谣言粉碎机"]


def test_source_option_overrides_file_name_only(store) -> None:
    import_debunks(store, [CSV, JSONL], source="手工导入")
    by_source = {}
    for d in _debunks(store):
        by_source.setdefault(d.source, 0)
        by_source[d.source] += 1
    # CSV rows have no source column and take --source; JSONL rows keep their own.
    assert by_source["手工导入"] == 4
    assert sum(by_source.values()) == 10


def test_both_files_together(store) -> None:
    report = import_debunks(store, [CSV, JSONL])
    assert report.as_dict() == {
        "files": 2,
        "rows": 14,
        "imported": 10,
        "updated": 1,
        "unchanged": 0,
        "rejected": {"bad_json": 1, "bad_url": 1, "near_duplicate": 1},
    }
    assert _count(store, Debunk) == 10


def test_stored_text_has_no_page_furniture(store) -> None:
    import_debunks(store, [CSV, JSONL])
    rows = _debunks(store)
    for d in rows:
        for junk in FURNITURE:
            assert junk not in d.text, (d.title, junk)
        assert "权威科学辟谣平台" not in d.text  # the WeChat account description
    tofu = next(d for d in rows if d.title == "经常吃腐乳会致癌？")
    # The article itself survives, from its first to its last line.
    assert tofu.text.startswith("腐乳因为带了个“腐”字和后期的腌制工序")
    assert tofu.text.endswith("此外,红曲色素是红曲菌产生")
    assert tofu.title == "经常吃腐乳会致癌？"


def test_repeated_promo_line_is_removed_per_file() -> None:
    texts = [f"第{i}篇文章的正文内容，讲的是一个完全不同的话题编号{i}。\n{PROMO}" for i in range(6)]
    assert repeated_lines(texts) == {PROMO}
    # Under the minimum count a line is content, not furniture.
    assert repeated_lines(texts[:4]) == set()


def test_huge_cell(tmp_path: Path, store) -> None:
    paragraphs = [f"第{i}段：研究人员测定了样品{i}号中亚硝酸盐的含量，结果为{i % 97}毫克每千克，低于国家标准限值。" for i in range(6000)]
    huge = "\n".join(paragraphs)
    assert len(huge) > 200_000
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["date", "title", "text", "url"])
    w.writerow(["2024-01-02", "亚硝酸盐检测长文", huge, "https://example.org/long/1"])
    w.writerow(["2024-01-03", "短文", "隔夜菜冷藏保存后彻底加热再吃，亚硝酸盐含量远低于致病剂量。", "https://example.org/short/1"])
    path = tmp_path / "huge.csv"
    path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8")
    assert path.stat().st_size > 200 * 1024
    assert max(len(c.encode("utf-8")) for c in [huge]) > 200 * 1024

    report = import_debunks(store, [path])
    assert report.imported == 2, report.as_dict()
    long_row = next(d for d in _debunks(store) if d.title == "亚硝酸盐检测长文")
    assert len(long_row.text) == 200_000  # import.max_text_chars
    assert long_row.text.startswith("第0段：")


def test_max_text_chars_is_applied(tmp_path: Path, store) -> None:
    path = tmp_path / "long.jsonl"
    text = "".join(f"第{i}句说明大蒜炝锅产生的丙烯酰胺极少。" for i in range(200))
    path.write_text(json.dumps({"title": "长文", "url": "https://example.org/l", "text": text}, ensure_ascii=False), encoding="utf-8")
    import_debunks(store, [path], max_text_chars=1000)
    (d,) = _debunks(store)
    assert len(d.text) == 1000


def test_missing_and_unsupported_files_are_reported_not_fatal(tmp_path: Path, store) -> None:
    other = tmp_path / "notes.docx"
    other.write_text("x")
    errors: list[str] = []
    report = import_debunks(store, [tmp_path / "nope.csv", other, JSONL], on_file_error=lambda e: errors.append(str(e)))
    assert report.files == 1 and report.imported == 6
    assert len(errors) == 2
    assert "no such file" in errors[0]
    assert "unsupported file type .docx" in errors[1]
    with pytest.raises(ImportFileError):
        import_debunks(store, [tmp_path / "nope.csv"])


# --------------------------------------------------------------------------- idempotence and outbox
def test_reimport_of_jsonl_is_all_unchanged(store) -> None:
    import_debunks(store, [JSONL])
    before = (_count(store, Debunk), _count(store, IndexOutbox), _count(store, AuditEvent))
    report = import_debunks(store, [JSONL])
    assert report.as_dict() == {"files": 1, "rows": 7, "imported": 0, "updated": 0, "unchanged": 6, "rejected": {"bad_json": 1}}
    assert (_count(store, Debunk), _count(store, IndexOutbox), _count(store, AuditEvent)) == before


def test_reimport_of_both_files_adds_no_rows(store) -> None:
    import_debunks(store, [CSV, JSONL])
    texts = {d.id: (d.title, d.text) for d in _debunks(store)}
    report = import_debunks(store, [CSV, JSONL])
    assert report.imported == 0
    assert report.rejected == {"bad_json": 1, "bad_url": 1, "near_duplicate": 1}
    assert _count(store, Debunk) == 10
    # Whatever the report says, the stored articles end as they were.
    assert {d.id: (d.title, d.text) for d in _debunks(store)} == texts


def test_reimport_of_csv_with_a_changed_row_is_all_unchanged(store) -> None:
    import_debunks(store, [CSV])
    outbox = _count(store, IndexOutbox)
    report = import_debunks(store, [CSV])
    assert report.updated == 0
    assert report.unchanged == 5
    assert _count(store, IndexOutbox) == outbox


def test_outbox_has_one_row_per_imported_or_updated_debunk(store) -> None:
    report = import_debunks(store, [CSV, JSONL])
    with store.session() as s:
        rows = list(s.scalars(select(IndexOutbox).order_by(IndexOutbox.id)))
        ids = set(s.scalars(select(Debunk.id)))
    assert len(rows) == report.imported + report.updated == 11
    assert {(r.doc_kind, r.op) for r in rows} == {("debunk", "upsert")}
    assert {r.doc_id for r in rows} == ids
    vinegar = next(d.id for d in _debunks(store) if d.title == "喝醋能软化血管吗？")
    assert [r.doc_id for r in rows].count(vinegar) == 2  # imported, then updated


# --------------------------------------------------------------------------- CLI
def _cli():
    from pipeline import cli

    return cli


def test_cli_import_prints_counts(clean_env: Path) -> None:
    result = CliRunner().invoke(_cli(), ["debunks", "import", str(CSV), str(JSONL)])
    assert result.exit_code == 0, result.output
    line = _flat(result.stdout)
    assert "2 file(s), 14 rows: imported 10, updated 1, unchanged 0, rejected 3 (bad_json 1, bad_url 1, near_duplicate 1); indexed 11" in line
    assert (clean_env / "piyao.db").exists()
    assert (clean_env / "index.sqlite").exists()

    again = CliRunner().invoke(_cli(), ["debunks", "import", "--json", "--no-index", str(JSONL)])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data == {
        "files": 1, "rows": 7, "imported": 0, "updated": 0, "unchanged": 6,
        "rejected": {"bad_json": 1}, "indexed": 0, "file_errors": [],
    }  # fmt: skip

    status = CliRunner().invoke(_cli(), ["status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout) == {
        "debunks": 10, "claims": 0, "flagged": 0, "queued": 0, "index_documents": 10, "outbox_backlog": 0,
    }  # fmt: skip


def test_cli_import_csv_without_url_column_exits_2(clean_env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nourl.csv"
    bad.write_text("\ufefftitle,text\n喝醋能软化血管吗？,没有证据\n", encoding="utf-8")
    result = CliRunner().invoke(_cli(), ["debunks", "import", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    err_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("piyao: error:")]
    assert len(err_lines) == 1
    assert "missing column(s) url" in _flat(result.stderr)


def test_cli_import_csv_without_url_column_is_one_error_line(clean_env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nourl.csv"
    bad.write_text("\ufefftitle,text\n喝醋能软化血管吗？,没有证据\n", encoding="utf-8")
    result = CliRunner().invoke(_cli(), ["debunks", "import", str(bad)])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("piyao: error:") and "url" in lines[0]


def test_cli_import_without_a_tty(tmp_path: Path) -> None:
    """The progress bar must not break when stdout and stderr are pipes (cron, CI)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env["PIYAO_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, str(REPO / "pipeline.py"), "debunks", "import", str(CSV), str(JSONL)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"imported 10, updated 1, unchanged 0, rejected 3", _flat(proc.stdout))
    assert "\x1b[" not in proc.stdout + proc.stderr  # no terminal control codes in logs
