"""Training-data fingerprints: safetensors + JSON, reloadable, and they catch duplicates of training texts."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from classifier.evaluate import remove_near_duplicates
from classifier.fingerprints import (
    FINGERPRINT_FILE,
    FORMAT,
    Fingerprints,
    key_hash,
    load_fingerprints,
    write_fingerprints,
)

# Common characters; random strings of them share almost no 5-character shingles.
CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行"
    "学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然"
    "前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无"
)


def _texts(n: int, seed: int, lo: int = 80, hi: int = 100) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(CHARS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def _edit(text: str, seed: int) -> str:
    """Change the third-last character: 3 of about 80 shingles change, Jaccard about 0.92."""
    rng = random.Random(seed)
    i = len(text) - 3
    new = rng.choice([c for c in "鱼鸟龙虎" if c != text[i]])
    return text[:i] + new + text[i + 1 :]


@pytest.fixture(scope="module")
def train() -> list[str]:
    return _texts(200, seed=11)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, train) -> Path:
    d = tmp_path_factory.mktemp("model")
    (d / "meta.json").write_text(json.dumps({"version": "test-model-1"}), "utf-8")
    texts = train + [train[0], "！！！……"]  # an exact repeat and a text without letters or digits
    write_fingerprints(texts, d, progress=False, note="unit test")
    return d


def test_roundtrip_and_header(model_dir, train):
    fp = load_fingerprints(model_dir)
    assert isinstance(fp, Fingerprints)
    assert fp.count == len(train) + 2 == len(fp)
    assert fp.key_hashes.dtype == np.uint64 and fp.key_hashes.shape == (len(train) + 1,)  # the repeat is folded
    assert np.all(fp.key_hashes[1:] > fp.key_hashes[:-1])
    assert fp.signatures.shape == (len(train), fp.num_perm)  # "！！！……" has no shingles, so no signature
    assert fp.signatures.dtype == np.uint32
    assert fp.num_perm == 128 and fp.k == 5
    assert fp.model_version == "test-model-1"
    assert fp.note == "unit test"
    assert key_hash(train[3]) in set(fp.key_hashes.tolist())


def test_file_is_plain_safetensors_with_a_json_header(model_dir):
    assert sorted(p.name for p in model_dir.iterdir()) == ["meta.json", FINGERPRINT_FILE]
    raw = (model_dir / FINGERPRINT_FILE).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    piyao = json.loads(header["__metadata__"]["piyao"])
    assert piyao["format"] == FORMAT and piyao["num_perm"] == 128 and piyao["count"] == 202
    assert header["key_hashes"]["dtype"] == "U64" and header["signatures"]["dtype"] == "U32"
    # Nothing but the two tensors follows the header: no pickle anywhere.
    end = max(header[name]["data_offsets"][1] for name in ("key_hashes", "signatures"))
    assert len(raw) == 8 + header_len + end
    assert b"pickle" not in raw and not raw.startswith(b"\x80")
    # 4 bytes per permutation per text, 8 per key.
    assert end == 200 * 128 * 4 + 201 * 8


def test_exact_and_near_duplicates_are_removed_unrelated_kept(model_dir, train):
    fp = load_fingerprints(model_dir)
    assert fp is not None
    exact = [train[5], " " + train[6].replace(train[6][10], train[6][10] + "，", 1) + "！！ ", "#" + train[7] + "#"]
    near = [_edit(train[i], i) for i in range(20, 30)] + [train[31] + "新闻"]
    unrelated = _texts(40, seed=99)
    texts = exact + near + unrelated
    assert fp.match(texts) == ["exact"] * len(exact) + ["near"] * len(near) + [None] * len(unrelated)
    kept, removed = fp.filter(texts)
    assert removed == len(exact) + len(near)
    assert kept == list(range(len(exact) + len(near), len(texts)))
    # The exact method (shingle sets of the training texts at hand) agrees on these clear cases.
    kept_records, n = remove_near_duplicates([{"text": t} for t in texts], [{"text": t} for t in train])
    assert n == removed and [r["text"] for r in kept_records] == unrelated


def test_threshold_is_the_estimated_jaccard(model_dir, train):
    fp = load_fingerprints(model_dir)
    assert fp is not None
    half = train[40][: len(train[40]) // 2] + _texts(1, seed=5, lo=40, hi=40)[0]  # Jaccard about 0.3
    assert fp.match([half], threshold=0.8) == [None]
    assert fp.match([half], threshold=0.2) == ["near"]
    with pytest.raises(ValueError, match="threshold"):
        fp.match([half], threshold=0.0)


def test_missing_fingerprints_is_none_and_a_broken_file_is_an_error(tmp_path):
    assert load_fingerprints(tmp_path) is None
    (tmp_path / FINGERPRINT_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a valid fingerprint file"):
        load_fingerprints(tmp_path)


def test_fewer_permutations_and_empty_training_set(tmp_path, train):
    small = tmp_path / "small"
    path = write_fingerprints(train[:50], small, num_perm=64)
    fp = load_fingerprints(small)
    assert fp is not None and fp.signatures.shape == (50, 64)
    assert path.stat().st_size < 50 * 64 * 4 + 50 * 8 + 1000
    assert fp.match([train[0], _edit(train[1], 1), _texts(1, seed=123)[0]]) == ["exact", "near", None]
    empty = tmp_path / "empty"
    write_fingerprints([], empty)
    fp0 = load_fingerprints(empty)
    assert fp0 is not None and len(fp0) == 0
    assert fp0.filter(["任何文本都不会被删除"]) == ([0], 0)
