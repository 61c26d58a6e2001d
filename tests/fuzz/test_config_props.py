"""Property tests over settings.load_settings: any config file and any PIYAO_* environment give either a
Settings or a ConfigError whose message is one line, never another exception (a traceback at startup).

config.yaml is edited by hand, often on a Chinese Windows desktop (GBK, a BOM, tabs), and the
environment comes from container definitions: both are input like any other.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from settings import ConfigError, Settings, load_settings
from tests.fuzz.support import examples


def _keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of the settings models (sections by their YAML name)."""
    for name, field in model.model_fields.items():
        path = (*prefix, field.alias or name)
        yield path
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _keys(ann, path)


KEY_PATHS = sorted(set(_keys(Settings)))
SECTIONS = sorted({p[0] for p in KEY_PATHS})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e309", ".nan", ".inf", "yes", "no", "on", "~", "null", "embedded", "elasticsearch",
                     "http://127.0.0.1:9200", "Asia/Shanghai", "rumor", "pseudoscience", "food_safety", "0 2 * * *",
                     "sqlite:///x.db", "piyao", "DEBUG", "json", "local", "redis", "feed", "claim", "a\nb", "\x00", "\t"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


@st.composite
def structured(draw: Any) -> dict[str, Any]:
    """A document built from the real key paths, with values of any type (and a few unknown keys)."""
    doc: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 8))):
        path = draw(st.sampled_from(KEY_PATHS)) if draw(st.integers(0, 9)) else (draw(st.text(max_size=6)),)
        node = doc
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[path[-1]] = draw(values)
    return doc


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


YAML_PIECES = ["web:", "  port: ", "8080", "\n", "  ", "\t", "- ", "&a ", "*a", "!!python/object:os.system", "!!binary",
               "? ", ": ", "{", "}", "[", "]", "'", '"', "#", "|", ">", "---", "...", "%YAML 1.1", "!!str", "!!int",
               "index:", "backend: elasticsearch", "classifier:", "thresholds:", "rumor: 2", "\ufeff", "\x00", "\x85",
               "\u2028", "中文", "：", "crawl:", "sources:", "x:", "type: feed", "urls: []"]
documents = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join),
    structured().map(_dump),
    st.binary(max_size=120),
    structured().map(lambda d: _dump(d).encode("gbk", "replace")),
)
env_names = st.one_of(
    st.sampled_from(KEY_PATHS).map(lambda p: "PIYAO_" + "__".join(x.upper() for x in p)),
    st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", max_size=8), min_size=1, max_size=4)
    .map(lambda parts: "PIYAO_" + "__".join(parts)),
    st.sampled_from(["PIYAO_", "PIYAO___", "PIYAO_WEB__", "PIYAO__WEB", "PIYAO_DATA_DIR", "PIYAO_WEB__PORT__X"]),
)
env_values = st.one_of(st.text(max_size=30), scalars.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n")),
                       st.sampled_from(["[", "{a: 1}", "- x", "!!python/name:os.system", "8080", "true", "", " "]))
environments = st.dictionaries(env_names, env_values, max_size=4)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _load(workdir: Path, document: str | bytes, environ: dict[str, str]) -> Settings | ConfigError:
    path = workdir / "config.yaml"
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document, encoding="utf-8", errors="surrogatepass")
    try:
        return load_settings(path, data_dir=workdir / "data", environ=environ)
    except ConfigError as exc:
        return exc


@settings(max_examples=examples(300), deadline=None)
@given(documents, environments)
@example("a: \x00", {})
@example("[" * 5000, {})
@example("a: " + "[" * 5000, {})
@example("\ufffe", {})
@example("web:\n  port: 80\n".encode("utf-16"), {})
@example("web:\n  public_url: 中文\n".encode("gbk"), {})
@example(_dump({"web": {"a\nb": 1}}), {})
@example("", {"PIYAO_WEB__A\nB": "1"})
@example("a: !!int\n", {"PIYAO_WEB__PORT": "!!bool x"})
@example("a: !!timestamp 10000-01-01\n", {"PIYAO_WEB__PORT": "[" * 5000})
@example("web:\n", {"PIYAO_WEB__PORT": "80"})
@example("web: 3\n", {"PIYAO_WEB__PORT": "80"})
def test_config_gives_settings_or_a_one_line_error(workdir: Path, document: str | bytes, environ: dict[str, str]) -> None:
    got = _load(workdir, document, environ)
    if isinstance(got, ConfigError):
        message = str(got)
        assert message and "\n" not in message and "\r" not in message, message
    else:
        assert isinstance(got, Settings)
        assert 1 <= got.web.port <= 65535
        assert all(math.isfinite(v) for v in got.classifier.thresholds.values())


@settings(max_examples=examples(200), deadline=None)
@given(st.sampled_from([p for p in KEY_PATHS if len(p) == 2]), scalars)
def test_one_key_of_any_type(workdir: Path, path: tuple[str, str], value: Any) -> None:
    """Each real key set to a value of any type, through the file and through the environment alike."""
    section, key = path
    from_file = _load(workdir, _dump({section: {key: value}}), {})
    env_name = f"PIYAO_{section.upper()}__{key.upper()}"
    env_value = "" if value is None else yaml.safe_dump(value).removesuffix("\n...\n").strip()
    from_env = _load(workdir, "", {env_name: env_value})
    for got in (from_file, from_env):
        assert isinstance(got, (Settings, ConfigError))
        if isinstance(got, ConfigError):
            assert "\n" not in str(got)
            assert section in str(got) or "environment" in str(got) or "config.yaml" in str(got), str(got)
