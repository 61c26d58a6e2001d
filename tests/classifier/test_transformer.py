"""The transformers path: fine-tune a tiny randomly initialised BERT built here, save, load, predict.

Everything runs on CPU in seconds: the model (2 layers, hidden 32) and its WordPiece vocabulary (the
characters of the texts below) are created in the test, so no weights are downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier.base import Prediction, load_model, model_kind
from classifier.transformer import MODEL_FILE, TransformerConfig, TransformerModel, fit_temperature, train_transformer

ROOT = Path(__file__).resolve().parents[2]

TOPICS = ["隔夜菜", "微波炉", "疫苗", "手机辐射", "转基因", "自来水", "火车票", "高考", "台风", "地铁",
          "牛奶", "大米", "医院", "学校", "银行", "空气", "鸡蛋", "西瓜", "电动车", "快递",
          "超市", "公园", "网络", "天气", "医保", "航班", "图书馆", "博物馆", "社区", "公交"]
# Rumor style: alarm + a call to forward. Credible style: a named outlet reports. An easy signal.
RUMORS = [f"震惊！{t}竟然致癌，赶紧转发扩散给家人！" for t in TOPICS]
CREDIBLE = [f"新华社报道，{t}相关工作今天正常开展。" for t in TOPICS]
RECORDS: list[dict[str, Any]] = ([{"id": f"r{i}", "text": t, "label": 1, "dataset": "weibo21_train"} for i, t in enumerate(RUMORS)]
           + [{"id": f"c{i}", "text": t, "label": 0, "dataset": "weibo21_train"} for i, t in enumerate(CREDIBLE)])
EVAL: list[dict[str, Any]] = ([{"id": "er1", "text": "震惊！鸡蛋竟然致癌，赶紧转发扩散！", "label": 1, "dataset": "weibo21_val"},
         {"id": "er2", "text": "震惊！空气竟然致癌，转发给家人！", "label": 1, "dataset": "weibo21_val"},
         {"id": "ec1", "text": "新华社报道，医院工作今天正常开展。", "label": 0, "dataset": "weibo21_val"},
         {"id": "ec2", "text": "新华社报道，公交相关工作正常开展。", "label": 0, "dataset": "weibo21_val"}])


def _make_base(directory: Path) -> Path:
    """A 2-layer BERT with a character WordPiece vocabulary, randomly initialised, saved like a hub model."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({ch for r in RECORDS + EVAL for ch in r["text"]})
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)  # type: ignore[assignment]
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # type: ignore[assignment]
    tok.post_processor = processors.TemplateProcessing(  # type: ignore[assignment]
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


CONFIG = dict(max_length=48, batch_size=8, eval_batch_size=16, epochs=6, lr=3e-3, warmup_ratio=0.1,
              weight_decay=0.0, seed=0, device="cpu",
              num_threads=1)  # one thread: a tiny model gains nothing from more, and a busy machine loses a lot


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_model() uses $OMP_NUM_THREADS threads when set (else every core)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = _make_base(tmp_path_factory.mktemp("base"))
    out = tmp_path_factory.mktemp("model")
    cfg = TransformerConfig(base_model=str(base), **CONFIG)  # type: ignore[arg-type]
    report = train_transformer(RECORDS, out, cfg, eval_records=EVAL, progress=False, command="pytest")
    return out, report


def test_training_learns_the_easy_signal(trained: tuple[Path, dict]) -> None:
    _, report = trained
    history = report["training"]["history"]
    assert len(history) == CONFIG["epochs"]
    assert history[-1]["loss"] < history[0]["loss"] * 0.7, history
    assert history[-1]["train_accuracy"] >= 0.9, history
    model = load_model(trained[0])
    scores = model.predict_proba([r["text"] for r in RECORDS])
    acc = float(np.mean((scores >= 0.5).astype(int) == np.array([r["label"] for r in RECORDS])))
    assert acc >= 0.9
    ev = report["metrics"]["eval"]
    assert ev["n"] == len(EVAL) and ev["accuracy"] >= 0.75 and 0.0 <= ev["ece"] <= 1.0
    assert report["temperature"] > 0


def test_load_model_dispatches_and_predicts(trained: tuple[Path, dict]) -> None:
    out, report = trained
    assert model_kind(out) == "transformer"
    model = load_model(out)
    assert isinstance(model, TransformerModel)
    assert model.model_version == report["version"] and model.model_version.startswith("transformer-")
    texts = [RUMORS[0], CREDIBLE[0], "", "新华社报道，" + "很长的句子" * 40]
    preds = model.predict(texts)
    assert len(preds) == len(texts) and all(isinstance(p, Prediction) for p in preds)
    for p in preds:
        assert 0.0 <= p.score <= 1.0
        assert p.label == ("rumor" if p.score >= 0.5 else "credible")
        assert p.stage == "transformer" and p.model_version == report["version"]
        assert p.explanation["kind"] == "tokens" and isinstance(p.explanation["terms"], list)
    assert preds[0].label == "rumor" and preds[1].label == "credible"


def test_scores_keep_input_order_and_batches_do_not_matter(trained: tuple[Path, dict]) -> None:
    model = TransformerModel.load(trained[0], device="cpu", batch_size=3, num_threads=1)
    texts = [r["text"] for r in RECORDS[::7]] + ["短", "新华社报道，" + "很长" * 30]
    forward = model.predict_proba(texts)
    backward = model.predict_proba(texts[::-1])
    assert forward.shape == (len(texts),)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    one_by_one = np.array([model.predict_proba([t])[0] for t in texts])
    np.testing.assert_allclose(forward, one_by_one, atol=1e-5)


def test_empty_input(trained: tuple[Path, dict]) -> None:
    model = load_model(trained[0])
    empty = model.predict_proba([])
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
    assert model.predict([]) == []


def test_meta_json_and_files(trained: tuple[Path, dict]) -> None:
    out, report = trained
    meta = json.loads((out / "meta.json").read_text("utf-8"))
    assert meta["kind"] == "transformer"
    assert meta["version"].startswith("transformer-") and meta["created"]
    assert meta["labels"] == {"0": "credible", "1": "rumor"}
    assert meta["config"]["base_model"] == report["config"]["base_model"]
    assert meta["config"]["max_length"] == CONFIG["max_length"]
    assert meta["base_model"]["name_or_path"] == report["config"]["base_model"]
    assert meta["training_data"]["n"] == len(RECORDS)
    assert meta["training_data"]["rumor"] == len(RUMORS) and meta["training_data"]["credible"] == len(CREDIBLE)
    assert meta["training_data"]["by_dataset"]["weibo21_train"] == {"credible": 30, "rumor": 30}
    assert meta["metrics"]["eval"]["macro_f1"] == report["metrics"]["eval"]["macro_f1"]
    assert meta["temperature"] == pytest.approx(report["temperature"])
    assert meta["format"] == "safetensors" and meta["model_file"] == MODEL_FILE
    assert (out / MODEL_FILE).is_file() and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()
    pickles = [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")]
    assert pickles == []
    card = (out / "MODEL_CARD.md").read_text("utf-8")
    assert meta["version"] in card and "Weibo21" in card and "macro-F1" in card


def test_directory_without_safetensors_is_refused(trained: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = trained
    for f in out.iterdir():
        if f.name != MODEL_FILE:
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="model.safetensors"):
        TransformerModel.load(tmp_path)
    with pytest.raises(ValueError, match="model.safetensors"):
        load_model(tmp_path)


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=4000)
    p = 1 / (1 + np.exp(-z / 2.5))  # true probabilities are the logits divided by 2.5
    y = (rng.random(4000) < p).astype(int)
    logits = np.stack([np.zeros_like(z), z], axis=1)
    assert fit_temperature(logits, y) == pytest.approx(2.5, rel=0.15)


def test_module_imports_without_torch_and_says_how_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"  # importing torch now raises ImportError
        "import classifier.transformer as t\n"
        "assert 'transformers' not in sys.modules\n"
        "try:\n"
        "    t.TransformerModel.load('tests')\n"
        "except ValueError:\n"
        "    pass\n"  # no model.safetensors: refused before torch is needed
        "try:\n"
        "    t.train_transformer([{'text': 'x', 'label': 0}], 'unused')\n"
        "except ModuleNotFoundError as exc:\n"
        "    assert \"pip install -e '.[transformer]'\" in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
