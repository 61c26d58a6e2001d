"""Typed settings: config.yaml defaults, PIYAO_<SECTION>__<KEY> overrides, one-line errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings


def test_defaults_load() -> None:
    s = load_settings(environ={})
    assert isinstance(s, Settings)
    assert s.data_dir == "var"
    assert s.index.backend == "embedded" and s.index.batch_size == 500
    assert s.imports.near_duplicate_threshold == 0.9 and s.imports.minhash_permutations == 128
    assert s.imports.max_text_chars == 200_000
    assert s.classifier.threshold == 0.5
    assert s.matching.top_k == 5 and s.matching.min_score == 0.0
    assert s.crawl.obey_robots is True and s.crawl.run == ["piyao_org_cn", "claim_feed"]
    assert s.spider("piyao_org_cn").start_urls == ["https://www.piyao.org.cn/ld.htm"]
    assert s.spider("no_such_spider").start_urls == []
    assert s.queue.limit == 20
    # Derived paths.
    assert s.data_path == (Path.cwd() / "var").resolve()
    assert s.store_url == f"sqlite:///{s.data_path / 'piyao.db'}"
    assert s.index_path == s.data_path / "index.sqlite"
    assert s.model_path == DEFAULT_CONFIG.parent / "models" / "default"


def test_defaults_without_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The models hold every default: the code works even where config.yaml is absent."""
    monkeypatch.setattr("settings.DEFAULT_CONFIG", tmp_path / "absent.yaml")
    s = load_settings(environ={})
    assert s.matching.top_k == 5 and s.classifier.threshold == 0.5
    assert s.crawl.spiders == {}


def test_env_override_is_typed() -> None:
    s = load_settings(environ={"PIYAO_MATCHING__TOP_K": "7", "PIYAO_CLASSIFIER__THRESHOLD": "0.65", "PIYAO_CRAWL__OBEY_ROBOTS": "false"})
    assert s.matching.top_k == 7 and isinstance(s.matching.top_k, int)
    assert s.classifier.threshold == 0.65
    assert s.crawl.obey_robots is False


def test_env_override_of_the_import_section_alias() -> None:
    s = load_settings(environ={"PIYAO_IMPORT__MIN_TEXT_CHARS": "50"})
    assert s.imports.min_text_chars == 50


def test_env_list_override() -> None:
    s = load_settings(environ={"PIYAO_CRAWL__RUN": "[claim_feed]"})
    assert s.crawl.run == ["claim_feed"]


def test_nested_spider_override() -> None:
    s = load_settings(environ={"PIYAO_CRAWL__SPIDERS__PIYAO_ORG_CN__START_URLS": '["http://127.0.0.1:1/ld.htm"]'})
    spider = s.spider("piyao_org_cn")
    assert spider.start_urls == ["http://127.0.0.1:1/ld.htm"]
    # Other keys of that spider keep their config.yaml values; other spiders are untouched.
    assert spider.enabled is True and spider.max_items == 0
    assert s.spider("claim_feed").start_urls == []


def test_env_can_configure_a_new_spider() -> None:
    s = load_settings(environ={"PIYAO_CRAWL__SPIDERS__MIRROR__MAX_ITEMS": "3"})
    assert s.spider("mirror").max_items == 3


def test_env_override_beats_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("matching:\n  top_k: 9\n", encoding="utf-8")
    assert load_settings(cfg, environ={}).matching.top_k == 9
    assert load_settings(cfg, environ={"PIYAO_MATCHING__TOP_K": "3"}).matching.top_k == 3
    # Keys absent from a partial file take the model defaults.
    assert load_settings(cfg, environ={}).classifier.threshold == 0.5


def test_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIYAO_QUEUE__LIMIT", "33")
    assert load_settings().queue.limit == 33


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PIYAO_CLASSIFIER__THRESHOLD": "2"}, "classifier.threshold"),
        ({"PIYAO_CLASSIFIER__THRESHOLD": "high"}, "classifier.threshold"),
        ({"PIYAO_MATCHING__TOP_K": "0"}, "matching.top_k"),
        ({"PIYAO_INDEX__BACKEND": "solr"}, "index.backend"),
        ({"PIYAO_CLASSIFIER__EMBEDDING_ENGINE": "gpu"}, "classifier.embedding_engine"),
        ({"PIYAO_IMPORT__MIN_TEXT_CHARS": "-1"}, "import.min_text_chars"),
        ({"PIYAO_CRAWL__SPIDERS__PIYAO_ORG_CN__MAX_ITEMS": "-3"}, "crawl.spiders.piyao_org_cn.max_items"),
    ],
)
def test_bad_env_value_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(key + ":")
    assert "environment" in msg


def test_bad_file_value_names_the_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("classifier:\n  threshold: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("classifier.threshold:")
    assert str(cfg) in msg


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PIYAO_CLASSIFIER__TRESHOLD": "0.6"})
    assert str(err.value) == "classifier.treshold: unknown key (environment)"


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("matching:\n  top_k: 3\n  topk: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert str(err.value) == f"matching.topk: unknown key ({cfg})"


def test_unknown_section_from_env_is_blamed_on_the_environment() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PIYAO_NOPE__X": "1"})
    assert str(err.value).startswith("nope: unknown key")
    assert "environment" in str(err.value)


def test_override_inside_a_scalar_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PIYAO_CLASSIFIER__THRESHOLD__X": "1"})
    assert str(err.value).startswith("classifier.threshold.x:")
    assert "PIYAO_CLASSIFIER__THRESHOLD__X" in str(err.value)


def test_invalid_yaml_gives_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("matching:\n  top_k: 5\n  min_score: [0.1\nqueue:\n  limit: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cfg} line ")
    assert "not valid YAML" in msg
    line = int(msg[len(f"{cfg} line ") :].split(":", 1)[0])
    assert 3 <= line <= 5


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(cfg, environ={})


def test_empty_config_file_means_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("# nothing\n", encoding="utf-8")
    assert load_settings(cfg, environ={}).matching.top_k == 5


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_settings(missing, environ={})
    assert str(err.value) == f"{missing}: config file not found"


def test_data_dir_from_env_and_argument(tmp_path: Path) -> None:
    env_dir, arg_dir = tmp_path / "from-env", tmp_path / "from-arg"
    s = load_settings(environ={"PIYAO_DATA_DIR": str(env_dir)})
    assert s.data_path == env_dir.resolve()
    assert s.store_url == f"sqlite:///{env_dir.resolve() / 'piyao.db'}"
    assert s.index_path == env_dir.resolve() / "index.sqlite"
    # The argument (--data-dir) wins over the environment.
    s = load_settings(data_dir=arg_dir, environ={"PIYAO_DATA_DIR": str(env_dir)})
    assert s.data_path == arg_dir.resolve()
    assert s.index_path == arg_dir.resolve() / "index.sqlite"


def test_explicit_store_url_and_index_path_win(tmp_path: Path) -> None:
    s = load_settings(
        data_dir=tmp_path,
        environ={"PIYAO_STORE__URL": "sqlite:////elsewhere/x.db", "PIYAO_INDEX__PATH": str(tmp_path / "i" / "idx.sqlite")},
    )
    assert s.store_url == "sqlite:////elsewhere/x.db"
    assert s.index_path == tmp_path / "i" / "idx.sqlite"


# --------------------------------------------------------------------------- CLI
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("PIYAO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIYAO_DATA_DIR", str(tmp_path / "data"))


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("piyao: error: ")
    return lines[0]


def test_cli_bad_env_value_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline import cli

    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("PIYAO_CLASSIFIER__THRESHOLD", "2")
    line = _one_error_line(CliRunner().invoke(cli, ["status"]))
    assert "classifier.threshold" in line


def test_cli_bad_config_file_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline import cli

    _clean_env(monkeypatch, tmp_path)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("classifier:\n  threshold: lots\n", encoding="utf-8")
    line = _one_error_line(CliRunner().invoke(cli, ["--config", str(cfg), "status"]))
    assert "classifier.threshold" in line and str(cfg) in line
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n", encoding="utf-8")
    line = _one_error_line(CliRunner().invoke(cli, ["--config", str(broken), "status"]))
    assert "line " in line and "not valid YAML" in line


def test_cli_missing_config_file_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline import cli

    _clean_env(monkeypatch, tmp_path)
    missing = tmp_path / "missing.yaml"
    line = _one_error_line(CliRunner().invoke(cli, ["--config", str(missing), "status"]))
    assert "config file not found" in line and str(missing) in line
    # PIYAO_CONFIG is the same option.
    monkeypatch.setenv("PIYAO_CONFIG", str(missing))
    line = _one_error_line(CliRunner().invoke(cli, ["status"]))
    assert "config file not found" in line


def test_cli_data_dir_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline import cli

    _clean_env(monkeypatch, tmp_path)
    target = tmp_path / "elsewhere"
    r = CliRunner().invoke(cli, ["--data-dir", str(target), "status", "--json"])
    assert r.exit_code == 0, r.output
    assert (target / "piyao.db").exists()
    assert not (tmp_path / "data" / "piyao.db").exists()
