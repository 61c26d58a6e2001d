"""Training-data fingerprints: what a model was trained on, without the training texts.

A model directory ships without its training data, yet an honest evaluation must
drop test items that duplicate or near-duplicate training items. This module
stores, for each training text, just enough to recognise such items later:

* the exact dedup key (``classifier.evaluate.dedup_key``: normalized text, letters
  and digits only) as a 64-bit BLAKE2b hash, and
* the MinHash signature of its 5-character shingles (``classifier.text.shingles``),
  datasketch ``MinHash`` with ``num_perm`` permutations and seed 1, the same
  parameters as ``classifier.evaluate.NearDuplicateIndex``.

File: ``train_fingerprints.safetensors`` in the model directory (``safetensors.numpy``,
no pickle). Tensors ``key_hashes`` (uint64, sorted, unique) and ``signatures``
(``(n, num_perm)``, uint32 for datasketch's ``affine32``/``legacy`` schemes); the
parameters (format, k, num_perm, seed, scheme, counts, model version, date) are a
JSON object in the safetensors header's metadata under ``"piyao"``. Texts with the
same exact key are stored once; texts without any shingle (no letters or digits)
have a key but no signature. Size: 4 bytes x num_perm + 8 bytes per distinct text:
6.8 MB for 13k distinct texts at 128 permutations (3.4 MB at 64); the 12.5k texts of
the four claim files (11.3k distinct) take 5.9 MB. Loading takes milliseconds; the LSH
index is built on first use (about 1 s for 11k signatures on one core).

Near-duplicate rule, and its error
----------------------------------
A test text near-duplicates the training data when its exact key is stored, or
when the *estimated* Jaccard similarity of its shingle set with a stored one (the
share of equal signature positions) is at least ``threshold`` (0.8). The shingle
sets are not stored, so unlike ``remove_near_duplicates`` (which confirms every
candidate on the exact shingle sets) the decision near the threshold is random:
the estimate is Binomial(num_perm, J) / num_perm, standard deviation
sqrt(J (1 - J) / num_perm) = 0.035 at J = 0.8 with 128 permutations (0.05 with 64).
Probability that a pair with true Jaccard J is removed at threshold 0.8:

=========  ======  ======  ======  ======  ======  ======
J          0.65    0.70    0.75    0.80    0.85    0.90
128 perm   0.0001  0.005   0.09    0.50    0.94    0.9996
64 perm    0.003   0.03    0.16    0.48    0.85    0.99
=========  ======  ======  ======  ======  ======  ======

Candidates come from a MinHash LSH index (datasketch ``MinHashLSH``) rebuilt from
the stored signatures when first needed, with bands chosen so that a pair at
J = threshold - 0.05 becomes a candidate with probability >= 0.995 (128
permutations, threshold 0.8: 25 bands of 5 rows); the LSH step therefore loses
almost nothing, and every candidate is then checked on the full signature.
Exact keys are compared as 64-bit hashes: a false match needs a hash collision
(probability about n_train x n_test / 2^64).

Measured on Weibo21 val (1918 texts) against the other three claim files (10.6k texts):
``remove_near_duplicates`` (exact Jaccard) removed 407, the 128-permutation fingerprints
419, 403 of them the same. Of the 16 only the fingerprints removed, 14 have an exact
Jaccard >= 0.8 (pairs the exact method's default LSH bands did not propose) and 2 have
0.775 and 0.797; the 4 only the exact method removed have 0.81-0.82.

Write fingerprints when a model is saved: ``write_fingerprints(train_texts, model_dir)``;
for an already trained starter model, ``python -m classifier.fingerprints --model DIR
--data-dir ../shared/data/claims`` rebuilds its training set as ``classifier.train`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from classifier.evaluate import DEFAULT_THRESHOLD, NUM_PERM, SHINGLE_K, _progress, dedup_key
from classifier.text import shingles

__all__ = [
    "FINGERPRINT_FILE",
    "FORMAT",
    "Fingerprints",
    "key_hash",
    "write_fingerprints",
    "load_fingerprints",
    "main",
]

FINGERPRINT_FILE = "train_fingerprints.safetensors"
FORMAT = "piyao-train-fingerprints/1"
_SEED = 1
# LSH candidates: a pair this far below the threshold is still found with this probability.
_LSH_MARGIN = 0.05
_LSH_RECALL = 0.995


def key_hash(text: str) -> int:
    """64-bit BLAKE2b hash of a text's exact dedup key, as an unsigned int."""
    digest = hashlib.blake2b(dedup_key(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _minhash_factory(num_perm: int, seed: int, scheme: str | None) -> tuple[Any, str]:
    """A function text-shingles -> MinHash with fixed permutations, and the scheme it uses."""
    from datasketch import MinHash

    if scheme is None:
        template = MinHash(num_perm=num_perm, seed=seed)
    else:
        try:
            template = MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
        except TypeError:  # datasketch < 2 knows only what 2.x calls "legacy"
            if scheme != "legacy":
                raise ValueError(
                    f"these fingerprints use datasketch's {scheme!r} MinHash scheme; the installed datasketch "
                    "predates it: upgrade datasketch or rewrite the fingerprints"
                ) from None
            template = MinHash(num_perm=num_perm, seed=seed)
    used = str(getattr(template, "scheme", "legacy"))
    perms = template.permutations

    def make(sh: set[str]) -> Any:
        kwargs: dict[str, Any] = {"num_perm": num_perm, "seed": seed, "permutations": perms}
        if hasattr(template, "scheme"):
            kwargs["scheme"] = used
        m = MinHash(**kwargs)
        if sh:
            m.update_batch(s.encode("utf-8") for s in sh)
        return m

    return make, used


def _signature_dtype(scheme: str) -> type:
    return np.uint64 if scheme == "affine64" else np.uint32


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band that still finds a pair at threshold - margin with high probability."""
    s = max(0.05, threshold - _LSH_MARGIN)
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1:
            break
        if 1.0 - (1.0 - s**r) ** b >= _LSH_RECALL:
            best = (b, r)
    return best


@dataclass(eq=False)
class Fingerprints:
    """Exact-key hashes and MinHash signatures of a model's training texts (see the module docstring)."""

    key_hashes: np.ndarray  # (n_keys,) uint64, sorted, unique
    signatures: np.ndarray  # (n_signatures, num_perm)
    num_perm: int = NUM_PERM
    k: int = SHINGLE_K
    seed: int = _SEED
    scheme: str = "affine32"
    count: int = 0  # training texts fingerprinted (before exact-duplicate folding)
    model_version: str | None = None
    created: str | None = None
    note: str | None = None
    path: Path | None = None
    _keys: set[int] | None = field(default=None, repr=False)
    _lsh: dict[float, Any] = field(default_factory=dict, repr=False)
    _make: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.count

    @property
    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "k": self.k,
            "num_perm": self.num_perm,
            "seed": self.seed,
            "scheme": self.scheme,
            "count": self.count,
            "keys": int(self.key_hashes.shape[0]),
            "signatures": int(self.signatures.shape[0]),
            "model_version": self.model_version,
            "created": self.created,
            "note": self.note,
        }

    def _key_set(self) -> set[int]:
        if self._keys is None:
            self._keys = set(self.key_hashes.tolist())
        return self._keys

    def _index(self, threshold: float) -> Any:
        """MinHash LSH over the stored signatures (built on first use per threshold)."""
        lsh = self._lsh.get(threshold)
        if lsh is not None:
            return lsh
        from datasketch import LeanMinHash, MinHashLSH

        lsh = MinHashLSH(num_perm=self.num_perm, params=_lsh_params(threshold, self.num_perm))
        extra = {} if self.scheme == "legacy" else {"scheme": self.scheme}
        with lsh.insertion_session() as session:
            for i, sig in enumerate(self.signatures):
                session.insert(i, LeanMinHash(seed=self.seed, hashvalues=sig, **extra), check_duplication=False)
        self._lsh[threshold] = lsh
        return lsh

    def match(self, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, *, progress: bool = False) -> list[str | None]:
        """Per text: ``"exact"`` (same dedup key as a training text), ``"near"`` (estimated Jaccard
        >= ``threshold`` with a training text) or None."""
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if self._make is None:
            self._make, _ = _minhash_factory(self.num_perm, self.seed, self.scheme)
        keys = self._key_set()
        lsh = self._index(threshold) if len(self.signatures) else None
        need = int(np.ceil(threshold * self.num_perm - 1e-9))
        out: list[str | None] = []
        for text in _progress(texts, len(texts), "checking against training fingerprints", progress):
            if key_hash(text) in keys:
                out.append("exact")
                continue
            sh = shingles(text or "", self.k)
            if not sh or lsh is None:
                out.append(None)
                continue
            mh = self._make(sh)
            cands = lsh.query(mh)
            hit = False
            if cands:
                sig = mh.hashvalues.astype(self.signatures.dtype, copy=False)
                equal = (self.signatures[np.asarray(cands, dtype=np.int64)] == sig).sum(axis=1)
                hit = bool((equal >= need).any())
            out.append("near" if hit else None)
        return out

    def filter(self, test_texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, *, progress: bool = False) -> tuple[list[int], int]:
        """(indices of the test texts to keep, number removed as duplicates / near duplicates of training texts)."""
        found = self.match(test_texts, threshold, progress=progress)
        kept = [i for i, m in enumerate(found) if m is None]
        return kept, len(found) - len(kept)


def _model_version(model_dir: Path) -> str | None:
    meta = model_dir / "meta.json"
    try:
        data = json.loads(meta.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version else None


def write_fingerprints(
    texts: Iterable[str],
    model_dir: str | Path,
    *,
    num_perm: int = NUM_PERM,
    progress: bool = False,
    note: str | None = None,
) -> Path:
    """Fingerprint ``texts`` (a model's training texts) into ``model_dir/train_fingerprints.safetensors``.

    ``note`` (optional) says where the texts came from. The model version is taken
    from ``model_dir/meta.json`` when it exists. Returns the file's path.
    """
    from safetensors.numpy import save_file

    if num_perm < 8:
        raise ValueError(f"num_perm must be at least 8, got {num_perm}")
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    make, scheme = _minhash_factory(num_perm, _SEED, None)
    texts = list(texts)
    seen: set[int] = set()
    sigs: list[np.ndarray] = []
    for text in _progress(texts, len(texts), "fingerprinting training texts", progress):
        if not isinstance(text, str):
            raise ValueError(f"training texts must be strings, got {type(text).__name__}")
        h = key_hash(text)
        if h in seen:
            continue
        seen.add(h)
        sh = shingles(text, SHINGLE_K)
        if sh:
            sigs.append(make(sh).hashvalues)
    dtype = _signature_dtype(scheme)
    signatures: np.ndarray = np.asarray(sigs, dtype=dtype).reshape(len(sigs), num_perm)
    key_hashes = np.array(sorted(seen), dtype=np.uint64)
    header = {
        "format": FORMAT,
        "k": SHINGLE_K,
        "num_perm": num_perm,
        "seed": _SEED,
        "scheme": scheme,
        "count": len(texts),
        "keys": int(key_hashes.shape[0]),
        "signatures": int(signatures.shape[0]),
        "model_version": _model_version(d),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": note,
    }
    path = d / FINGERPRINT_FILE
    tmp = path.with_suffix(".tmp")
    save_file(
        {"key_hashes": key_hashes, "signatures": np.ascontiguousarray(signatures)},
        str(tmp),
        metadata={"piyao": json.dumps(header, ensure_ascii=False)},
    )
    tmp.replace(path)
    return path


def load_fingerprints(model_dir: str | Path) -> Fingerprints | None:
    """The training fingerprints of a model directory, or None when it has none.

    Raises ValueError for a file that is not a valid fingerprint file.
    """
    from safetensors import safe_open

    path = Path(model_dir) / FINGERPRINT_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as fh:
            metadata = fh.metadata() or {}
            names = set(fh.keys())
            if names != {"key_hashes", "signatures"}:
                raise ValueError(f"expected tensors key_hashes and signatures, found {sorted(names)}")
            key_hashes = fh.get_tensor("key_hashes")
            signatures = fh.get_tensor("signatures")
        header = json.loads(metadata.get("piyao", "null"))
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid fingerprint file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise ValueError(f"{path}: not a valid fingerprint file ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a valid fingerprint file (header format is not {FORMAT!r})")
    num_perm = int(header["num_perm"])
    scheme = str(header.get("scheme", "legacy"))
    if key_hashes.dtype != np.uint64 or key_hashes.ndim != 1:
        raise ValueError(f"{path}: key_hashes must be a 1-d uint64 tensor")
    if signatures.ndim != 2 or signatures.shape[1] != num_perm or signatures.dtype != _signature_dtype(scheme):
        raise ValueError(f"{path}: signatures must be (n, {num_perm}) {np.dtype(_signature_dtype(scheme)).name}")
    return Fingerprints(
        key_hashes=key_hashes,
        signatures=signatures,
        num_perm=num_perm,
        k=int(header.get("k", SHINGLE_K)),
        seed=int(header.get("seed", _SEED)),
        scheme=scheme,
        count=int(header.get("count", key_hashes.shape[0])),
        model_version=header.get("model_version"),
        created=header.get("created"),
        note=header.get("note"),
        path=path,
    )


def _starter_training_texts(data_dir: Path, model_dir: Path) -> tuple[list[str], str]:
    """The training texts of a starter model trained by ``classifier.train`` (same loading and de-duplication).

    Editors' decisions that joined the training (``extra_records``) are not in the data files: a model trained
    with them gets complete fingerprints only from ``train_starter`` itself.
    """
    from classifier.train import DATA_FILES, dedup, load_claims

    meta = json.loads((model_dir / "meta.json").read_text("utf-8"))
    td = meta.get("training_data") or {}
    datasets = td.get("datasets")
    if not datasets:
        raise ValueError(f"{model_dir}/meta.json names no training datasets (training_data.datasets)")
    paths = [data_dir / fname for fname in DATA_FILES.values()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing data files: {missing}")
    records = load_claims(paths)
    order = {name: i for i, name in enumerate(DATA_FILES)}
    records.sort(key=lambda r: order.get(r["dataset"], 99))
    threshold = float((td.get("dedup") or {}).get("threshold", DEFAULT_THRESHOLD))
    kept, _ = dedup(records, threshold=threshold, progress=True)
    texts = [r["text"] for r in kept if r["dataset"] in set(datasets)]
    note = f"rebuilt from {', '.join(datasets)} as classifier.train de-duplicates them (threshold {threshold})"
    return texts, note


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m classifier.fingerprints",
        description="Write train_fingerprints.safetensors for a starter model trained by classifier.train.",
    )
    ap.add_argument("--model", required=True, help="model directory (its meta.json names the training datasets)")
    ap.add_argument("--data-dir", required=True, help="folder with the labelled claim files the model was trained on")
    ap.add_argument("--num-perm", type=int, default=NUM_PERM)
    args = ap.parse_args(argv)
    model_dir = Path(args.model)
    texts, note = _starter_training_texts(Path(args.data_dir), model_dir)
    path = write_fingerprints(texts, model_dir, num_perm=args.num_perm, progress=True, note=note)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(texts)} training texts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
