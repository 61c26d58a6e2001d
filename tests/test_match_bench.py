"""bench/match_bench.py on a tiny synthetic corpus: the JSON shape, and copies that are distinct and perturbed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import bench_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mb():
    with bench_script("match_bench.py", "match_bench") as module:
        yield module


ROWS = [
    ("喝隔夜茶会致癌吗？", "网传隔夜茶含有大量亚硝酸盐，喝了会致癌。经核实，该说法没有科学依据。隔夜茶只要没有变质，亚硝酸盐含量极低，正常饮用不会危害健康。"),
    ("吃香蕉能治疗便秘？", "有网友称每天吃两根香蕉就能治好便秘。专家表示，这种说法不准确。未成熟的香蕉含有较多鞣酸，反而可能加重便秘，膳食纤维和饮水更重要。"),
    ("微波炉加热食物会产生辐射致癌", "网上流传微波炉加热的食物带有辐射，长期吃会致癌。真相是微波只让水分子振动发热，停止加热后不会残留辐射，食物本身也不会变得有放射性。"),
    ("某市自来水被污染不能喝系谣言", "近日网传某市自来水被化工厂污染，居民不能饮用。经查，该消息系谣言，水务部门检测显示各项指标均符合国家标准，请市民不信谣不传谣。"),
    ("酸性体质是百病之源？", "网传酸性体质是百病之源，需要多吃碱性食物调节。事实是人体血液酸碱度由自身系统严格调节，吃什么食物都不会改变体质酸碱，所谓酸碱体质理论已被证实是骗局。"),
    ("打完新冠疫苗不能洗澡？", "有说法称接种疫苗后三天内不能洗澡，否则会引起感染发烧。医生解释，接种后当天保持接种部位清洁干燥即可，第二天正常洗澡没有问题，不必过度担心。"),
]


@pytest.fixture(scope="module")
def base(mb, tmp_path_factory):
    rows = [{"title": t, "url": f"https://example.org/debunk/{i}", "date": "2023-05-0%d" % (i + 1), "text": x, "source": "测试"}
            for i, (t, x) in enumerate(ROWS)]
    cache = tmp_path_factory.mktemp("e5") / "e5.sqlite"
    return mb.prepare_base(rows, cache_path=cache, embed_kinds=("title", "rumor", "verdict"))


def test_copies_are_distinct_and_perturbed(mb, base):
    assert base.passages >= 12 and base.vectors
    small = mb.grow(base, 5, seed=7)
    assert small.copies == 0 and 5 <= small.passages < base.passages
    big = mb.grow(base, 5 * base.passages, seed=7)
    assert big.copies > len(base.articles)  # every article copied more than once
    assert big.passages >= 5 * base.passages
    keys = [d.key for d in big.docs]
    urls = [d.url for d in big.docs]
    assert len(set(keys)) == len(keys) and len(set(urls)) == len(urls)
    passage_keys = [f"{d.key}#{p.position}" for d in big.docs for p in d.passages]
    assert len(set(passage_keys)) == len(passage_keys)
    originals = {p.text for a in base.articles for p in a.passages}
    copies = big.docs[len(base.articles):]
    for d in copies:
        assert int(d.key.split(":")[1]) > big.copy_keys_from
        assert d.title not in {a.title for a in base.articles}
        for p in d.passages:
            assert p.text not in originals  # every passage of a copy is perturbed
            assert big.tokens[p.text]  # its tokens are known to the lookup
        assert big.tokens[d.text] and big.tokens[d.title]
    # The copies of a smaller size are the first copies of a larger one.
    mid = mb.grow(base, 3 * base.passages, seed=7)
    assert [d.title for d in mid.docs] == [d.title for d in big.docs[: len(mid.docs)]]
    # Copy vectors: unit length, near their original, not equal to it.
    vecs = dict(big.vectors)
    for d in copies[:3]:
        i = next(k for k, a in enumerate(base.articles) if d.url.startswith(a.url + "#"))
        for p in d.passages:
            v = vecs.get(f"{d.key}#{p.position}")
            orig = base.vectors.get((i, p.position))
            assert (v is None) == (orig is None)
            if v is not None:
                assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-4
                assert 0.9 < float(v @ orig) < 0.9999


def test_tokenize_lookup_is_restored(mb):
    import index.elastic
    import index.embedded

    before = (index.embedded.tokenize, index.elastic.tokenize)
    with mb.known_tokens({"某段文字": ["某段", "文字"]}) as stats:
        assert index.embedded.tokenize("某段文字") == ["某段", "文字"]
        assert index.elastic.tokenize("隔夜茶致癌") == mb.tokenize("隔夜茶致癌")
    assert stats == {"known": 1, "tokenized": 1}
    assert (index.embedded.tokenize, index.elastic.tokenize) == before


def test_run_bench_json_shape(mb, base, tmp_path, monkeypatch):
    monkeypatch.setattr(mb, "WARMUP", 1)
    queries, info = mb.build_queries(base, tmp_path / "no-eval", 4, seed=7)  # no eval sets: title questions
    assert len(queries) == 5 and info["mix"]["title_question"] == 4
    sizes = [8, 3 * base.passages]
    out = mb.run_bench(base, queries, sizes=sizes, backends=["embedded"], seed=7, workdir=tmp_path, isolate=False,
                       retries=0, quiet_wait=0)
    json.dumps(out)  # serializable
    cells = out["backends"]["embedded"]
    assert set(cells) == {str(s) for s in sizes}
    for s in sizes:
        c = cells[str(s)]
        assert c["stage"] == "done" and c["queries"] == 4 and c["encoded_claims"] == 5
        assert c["passages"] >= s and c["passages_indexed"] == c["passages"]
        assert c["passages_with_vectors"] == c["passages_embed_kinds"] > 0
        for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms"):
            assert c["latency"][k] > 0 and 0 < c["latency_without_encode"][k] <= c["latency"][k]
        assert set(c["breakdown"]) == {"encode", "bm25", "knn", "rest"}
        assert c["breakdown"]["encode"]["mean_ms"] > 0 and c["breakdown"]["knn"]["mean_ms"] > 0
        assert c["build_seconds"] >= 0
        assert set(c["cpu_during_queries"]) == {"bench", "elasticsearch", "other_processes"}
        assert len(c["attempts"]) == 1 and isinstance(c["disturbed"], bool)
    assert cells[str(sizes[1])]["copies"] > 0
    g = out["growth"]["embedded"]
    key = "p95(%d)/p95(8)" % sizes[1]
    assert set(g) == {key, key + " without encode", key + " by part", "passages(%d)/passages(8)" % sizes[1]}
    assert not list(tmp_path.glob("embedded-*"))  # index files removed
