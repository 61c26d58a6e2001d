"""Known debunks as evidence: retrieval features for the classifier, and training statements drawn from debunks.

A claim that closely matches a known debunk is evidence that it is a rumor; the
debunk it matched is also the explanation an editor reads. ``Knowledge`` holds the
titles (and URLs, outlets) of the debunks known at training time with

* their e5 vectors (classifier.encoder; cosine = dot product of normalized vectors), and
* a hashed character 2-3-gram TF-IDF matrix, cheap enough to compute for every claim,
  so that the cascade's first stage can see a lexical match without running e5.

Persistence: ``knowledge.json`` (titles, URLs, outlets, parameters) and
``knowledge.safetensors`` (float16 vectors, float32 idf): no pickle.

``rumor_statements`` and ``credible_statements`` derive training examples from
debunk articles: the rumor a title states ("竹炭食品能排毒养颜吗？" → "竹炭食品能排毒养颜"),
and plain advice sentences from the article body ("建议……", "研究表明……") that carry no
rumor or negation words. Both are weak labels; docs/classifier.md says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from classifier.encoder import DIM, E5Encoder
from classifier.text import normalize

__all__ = [
    "KNOWLEDGE_JSON",
    "KNOWLEDGE_TENSORS",
    "RETRIEVAL_FEATURES",
    "retrieval_features",
    "Knowledge",
    "Neighbours",
    "NEIGHBOUR_FEATURES",
    "NEIGHBOUR_FILE",
    "rumor_statement",
    "credible_statements",
]

KNOWLEDGE_JSON = "knowledge.json"
KNOWLEDGE_TENSORS = "knowledge.safetensors"
RETRIEVAL_FEATURES = ("e5_top1", "e5_top3_mean", "e5_margin", "lex_top1", "lex_top3_mean")
_LEX_BITS = 20


def retrieval_features(dense: np.ndarray, lex: np.ndarray) -> np.ndarray:
    """RETRIEVAL_FEATURES from ``Knowledge.dense_top`` and ``Knowledge.lexical_top`` rows of the same claims."""
    return np.column_stack([dense[:, 0], dense[:, 1], dense[:, 2], lex[:, 0], lex[:, 1]])


def _lex_vectorizer() -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char", ngram_range=(2, 3), n_features=2**_LEX_BITS, alternate_sign=False, norm=None, lowercase=False, dtype=np.float32
    )


def _lex_input(text: str) -> str:
    return "".join(ch for ch in normalize(text or "") if not ch.isspace())


@dataclass
class Match:
    index: int
    title: str
    url: str
    source: str
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "debunk", "title": self.title, "url": self.url, "source": self.source, "similarity": round(self.similarity, 4)}


class Knowledge:
    """Debunk titles with e5 vectors and a lexical matrix; nearest-debunk features for claims."""

    def __init__(self, titles: Sequence[str], urls: Sequence[str], sources: Sequence[str], vectors: np.ndarray, idf: np.ndarray | None = None):
        if not (len(titles) == len(urls) == len(sources) == len(vectors)):
            raise ValueError("titles, urls, sources and vectors must have the same length")
        self.titles = list(titles)
        self.urls = list(urls)
        self.sources = list(sources)
        self.vectors = np.asarray(vectors, dtype=np.float32).reshape(len(self.titles), DIM)
        self._hv = _lex_vectorizer()
        counts = self._hv.transform([_lex_input(t) for t in self.titles]).tocsr()
        if idf is None:
            df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float32)
            idf = np.log((1.0 + len(self.titles)) / (1.0 + df)) + 1.0
        self.idf = np.asarray(idf, dtype=np.float32)
        self._lex = self._weigh(counts)

    def __len__(self) -> int:
        return len(self.titles)

    # -- building ------------------------------------------------------------
    @classmethod
    def build(cls, rows: Iterable[dict[str, Any]], encoder: E5Encoder, *, progress: Any = None) -> "Knowledge":
        """From debunk rows ``{title, url, source}``; one entry per distinct normalized title."""
        seen: set[str] = set()
        titles: list[str] = []
        urls: list[str] = []
        sources: list[str] = []
        for r in rows:
            title = " ".join(str(r.get("title") or "").split())
            key = _lex_input(title)
            if len(key) < 4 or key in seen:
                continue
            seen.add(key)
            titles.append(title)
            urls.append(str(r.get("url") or ""))
            sources.append(str(r.get("source") or ""))
        if not titles:
            raise ValueError("no debunk titles to build the knowledge from")
        vectors = encoder.encode(titles, progress=progress)
        return cls(titles, urls, sources, vectors)

    # -- features -------------------------------------------------------------
    def _weigh(self, counts: Any) -> Any:
        from sklearn.preprocessing import normalize as l2

        X = counts.tocsr().astype(np.float32)
        X.data = (1.0 + np.log(X.data)) * self.idf[X.indices]
        return l2(X)

    def lexical(self, texts: Sequence[str]) -> Any:
        """(n, len) sparse cosine similarities of char 2-3-gram TF-IDF."""
        Q = self._weigh(self._hv.transform([_lex_input(t) for t in texts]))
        return (Q @ self._lex.T).tocsr()

    def lexical_top(self, texts: Sequence[str], k: int = 3, exclude: Sequence[int | None] | None = None) -> np.ndarray:
        """(n, 3): best lexical similarity, mean of the best k, and the index of the best."""
        S = self.lexical(texts)
        out = np.zeros((len(texts), 3), dtype=np.float32)
        out[:, 2] = -1
        for i in range(len(texts)):
            row = S.getrow(i)
            idx, vals = row.indices, row.data
            if exclude is not None and exclude[i] is not None:
                keep = idx != exclude[i]
                idx, vals = idx[keep], vals[keep]
            if vals.size == 0:
                continue
            order = np.argsort(-vals)[:k]
            out[i, 0] = vals[order[0]]
            out[i, 1] = float(np.mean(np.pad(vals[order], (0, k - len(order)))))
            out[i, 2] = idx[order[0]]
        return out

    def dense_top(self, vectors: np.ndarray, k: int = 3, exclude: Sequence[int | None] | None = None) -> np.ndarray:
        """(n, 4): best e5 cosine, mean of the best k, best minus 10th best, and the index of the best."""
        S = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        if exclude is not None:
            for i, j in enumerate(exclude):
                if j is not None:
                    S[i, j] = -1.0
        kk = min(10, S.shape[1])
        part = -np.partition(-S, kk - 1, axis=1)[:, :kk]
        part = -np.sort(-part, axis=1)
        out = np.zeros((len(S), 4), dtype=np.float32)
        out[:, 0] = part[:, 0]
        out[:, 1] = part[:, : min(k, kk)].mean(axis=1)
        out[:, 2] = part[:, 0] - part[:, kk - 1]
        out[:, 3] = np.argmax(S, axis=1)
        return out

    def match(self, index: int, similarity: float) -> Match:
        return Match(int(index), self.titles[index], self.urls[index], self.sources[index], float(similarity))

    # -- persistence ---------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors.astype(np.float16), "idf": self.idf}, str(d / KNOWLEDGE_TENSORS))
        doc = {"count": len(self), "dim": DIM, "lexical": {"analyzer": "char", "ngram_range": [2, 3], "hash_bits": _LEX_BITS},
               "titles": self.titles, "urls": self.urls, "sources": self.sources}
        (d / KNOWLEDGE_JSON).write_text(json.dumps(doc, ensure_ascii=False) + "\n", "utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "Knowledge":
        from safetensors.numpy import load_file

        d = Path(directory)
        doc = json.loads((d / KNOWLEDGE_JSON).read_text("utf-8"))
        tensors = load_file(str(d / KNOWLEDGE_TENSORS))
        return cls(doc["titles"], doc["urls"], doc["sources"], tensors["vectors"].astype(np.float32), tensors["idf"])


# -- training statements drawn from debunks --------------------------------------------------------
_TITLE_NOISE = re.compile(
    r"#[^#]{1,20}#|捉谣记\s*[|｜]|[|｜]\s*百度辟谣|【[^】]{0,12}】|^\s*(?:辟谣|官方辟谣|网传|传言|谣言)\s*[:：]?"
)
_QUOTES = re.compile(r"[“”\"「」『』‘’]")
_QUESTION_WORDS = re.compile(r"什么|怎么|为什么|如何|哪些|哪个|多少|几种|何时|谁")
_FALSE_SUFFIX = re.compile(r"(?:系|为|是|纯属|属)?(?:谣言|不实信息|不实|虚假信息|假消息|伪造|编造|误读|假的)")
_TAIL = re.compile(r"(?:吗|么|嘛|呢|是真的|真的|靠谱|可信|有用|有效)+$")
# Where 谣言 is the object of a verb rather than a verdict ("打击整治网络谣言", "男子编造谣言"), what precedes it
# is no rumor: a statement ending in one of these is dropped.
CUT_OBJECT = re.compile(r"(?:网络|网上|发布|散布|传播|编造|捏造|造谣|男子|女子|一人|网民|眼球|流量|公布|打击|整治|查处|依法)$")


def rumor_statement(title: str) -> str | None:
    """The rumor a debunk title states, or None when the title states none.

    "竹炭食品能排毒养颜吗？" → "竹炭食品能排毒养颜"; "网传洞头GDP增速-10.43%为不实信息" → "洞头GDP增速-10.43%".
    """
    t = _QUOTES.sub("", _TITLE_NOISE.sub("", " ".join(str(title or "").split()))).strip()
    claim: str | None = None
    q = re.split(r"[？?]", t, maxsplit=1)
    if len(q) == 2:
        claim = q[0]
    else:
        m = _FALSE_SUFFIX.search(t)
        if m and m.start() >= 6 and not CUT_OBJECT.search(t[: m.start()].strip()):
            claim = t[: m.start()]
    if not claim:
        return None
    claim = re.sub(r"^(?:网传|传言|传闻|听说|有人说|据说)", "", claim.strip(" ，,：:！!。")).strip()
    claim = _TAIL.sub("", claim).strip(" ，,：:")
    if len(claim) < 6 or _QUESTION_WORDS.search(claim):
        return None
    return claim


_ADVICE = re.compile(r"建议|应当|应该|有助于|可以降低|有利于|正确的做法|科学的做法|专家提醒|研究表明|研究显示|需在医生指导下|需要在医生指导下|推荐")
_NOT_CREDIBLE = re.compile(r"谣|网传|传言|说法|流言|不实|假的|并非|不会|不能|没有|并不|未|骗|[?？]|网友|视频|图片|截图|所谓|号称|宣称|据传|传闻")


def credible_statements(text: str, *, limit: int = 2, min_chars: int = 15, max_chars: int = 90) -> list[str]:
    """Up to ``limit`` advice sentences of a debunk body that state facts plainly (no rumor or negation words)."""
    out: list[str] = []
    for sent in re.split(r"(?<=[。！!；;])|\n", text or ""):
        s = sent.strip(" \u3000\t•·-—*")
        if not (min_chars <= len(s) <= max_chars):
            continue
        if _ADVICE.search(s) and not _NOT_CREDIBLE.search(s):
            out.append(s)
            if len(out) >= limit:
                break
    return out


NEIGHBOUR_FILE = "neighbours.safetensors"
NEIGHBOUR_FEATURES = ("knn_rumor_share", "knn_top1_rumor_sim", "knn_top1_credible_sim")


class Neighbours:
    """Labelled training texts in e5 space: what the nearest known claims were judged to be.

    Features of a claim: the similarity-weighted share of rumors among its ``k`` nearest
    labelled texts, and its best similarity to a rumor and to a credible text. Stored as
    float16 vectors and int8 labels (safetensors).
    """

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, k: int = 10):
        self.vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, DIM)
        self.labels = np.asarray(labels, dtype=np.int8).ravel()
        if len(self.vectors) != len(self.labels):
            raise ValueError("vectors and labels must have the same length")
        self.k = k

    def __len__(self) -> int:
        return len(self.labels)

    def features(self, vectors: np.ndarray, exclude: Sequence[int | None] | None = None, chunk: int = 2048) -> np.ndarray:
        """(n, 3) NEIGHBOUR_FEATURES; ``exclude[i]`` leaves row i's own entry out (training rows)."""
        q = np.asarray(vectors, dtype=np.float32)
        out = np.zeros((len(q), 3), dtype=np.float32)
        if len(self) == 0 or len(q) == 0:
            return out
        rumor = self.labels == 1
        k = min(self.k, len(self))
        for start in range(0, len(q), chunk):
            S = q[start : start + chunk] @ self.vectors.T
            if exclude is not None:
                for i in range(S.shape[0]):
                    j = exclude[start + i]
                    if j is not None:
                        S[i, j] = -1.0
            top = np.argpartition(-S, k - 1, axis=1)[:, :k]
            sims = np.take_along_axis(S, top, axis=1)
            w = np.clip(sims, 0.0, None) + 1e-6
            out[start : start + len(S), 0] = (w * self.labels[top]).sum(axis=1) / w.sum(axis=1)
            out[start : start + len(S), 1] = np.where(rumor[None, :], S, -1.0).max(axis=1) if rumor.any() else 0.0
            out[start : start + len(S), 2] = np.where(~rumor[None, :], S, -1.0).max(axis=1) if (~rumor).any() else 0.0
        return out

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        save_file({"vectors": self.vectors.astype(np.float16), "labels": self.labels, "k": np.array([self.k])}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> "Neighbours":
        from safetensors.numpy import load_file

        t = load_file(str(path))
        return cls(t["vectors"].astype(np.float32), t["labels"], int(t["k"][0]))
