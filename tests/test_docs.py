"""The documentation keeps up with the code: config.yaml documents every setting, README every command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, get_args, get_origin

import click
import pytest
import yaml
from pydantic import BaseModel

from settings import DEFAULT_CONFIG, Settings, SpiderSettings

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _setting_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, field) for every field, by the name used in config files (aliases such as `import`)."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = prefix + (key,)
        yield path, info
        sub = _model_of(info.annotation)
        if sub is not None:
            yield from _setting_paths(sub, path)


def _config() -> dict[str, Any]:
    doc = yaml.safe_load(DEFAULT_CONFIG.read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def _lookup(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for part in path:
        assert isinstance(node, dict) and part in node, f"{'.'.join(path)} is not in config.yaml"
        node = node[part]
    return node


def test_every_setting_is_in_config_yaml() -> None:
    doc = _config()
    paths = [p for p, _ in _setting_paths(Settings)]
    assert ("import", "near_duplicate_threshold") in paths  # the alias, as written in the file
    for path in paths:
        _lookup(doc, path)


def test_every_spider_key_is_documented() -> None:
    spiders = _lookup(_config(), ("crawl", "spiders"))
    assert spiders, "config.yaml configures no spider"
    keys = set(SpiderSettings.model_fields)
    for name, conf in spiders.items():
        assert keys <= set(conf), f"crawl.spiders.{name} lacks {sorted(keys - set(conf))}"


def test_config_yaml_has_no_unknown_keys_and_loads() -> None:
    s = Settings.model_validate(_config())
    assert s.imports.near_duplicate_threshold == 0.9


def test_every_setting_has_a_comment_nearby() -> None:
    """Each section of config.yaml explains itself with at least one comment."""
    text = DEFAULT_CONFIG.read_text("utf-8")
    for section in ("store", "index", "import", "classifier", "matching", "crawl", "queue"):
        block = re.search(rf"^{section}:\n((?:[ #].*\n|\n)*)", text, re.M)
        assert block and "#" in block.group(1), section


def _scalars(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    inst = model()
    for name, info in model.model_fields.items():
        key = info.alias or name
        sub = _model_of(info.annotation)
        if sub is not None:
            yield from _scalars(sub, prefix + (key,))
        elif get_origin(info.annotation) is not dict:
            yield prefix + (key,), getattr(inst, name)


def test_config_yaml_values_are_the_model_defaults() -> None:
    doc = _config()
    differ = {".".join(p): (default, _lookup(doc, p)) for p, default in _scalars(Settings) if _lookup(doc, p) != default}
    assert differ == {}


# --------------------------------------------------------------------------- README
def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        yield " ".join(path)
        if isinstance(cmd, click.Group):
            yield from _command_paths(cmd, path)


def _cli_section() -> str:
    text = README.read_text("utf-8")
    m = re.search(r"^## CLI\b.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "README.md needs a '## CLI' section"
    return m.group(1)


def test_cli_commands_are_known() -> None:
    from pipeline import cli

    paths = set(_command_paths(cli))
    assert {"debunks", "debunks import", "search", "match", "status", "index", "queue"} <= paths


def test_every_cli_command_is_in_the_readme() -> None:
    """Each command appears in README's '## CLI' section as `piyao <command>` or in backticks."""
    from pipeline import cli

    section = _cli_section()
    missing = []
    for path in _command_paths(cli):
        words = r"\s+".join(map(re.escape, path.split()))
        if not re.search(rf"piyao(?:\s+--?[\w-]+(?:[ =]\S+)?)*\s+{words}(?![\w-])|`{words}(?![\w-])[^`]*`", section):
            missing.append(path)
    assert missing == [], f"README.md '## CLI' does not mention: {', '.join(missing)}"
