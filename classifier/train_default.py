"""Train and measure the default (cascade) classifier.

Data: the labelled claim sets (classifier.train.load_claims), plus training statements
drawn from the debunk articles (classifier.knowledge: the rumor each title states,
label rumor; plain advice sentences of the bodies, label credible), plus editors'
decisions when ``--with-reviews`` is given. Everything is de-duplicated before any split.

Held-out measurement (a): trained without Weibo21 val, measured on de-duplicated
Weibo21 val (test items near-duplicating training data removed). Optional extra
evaluation files (JSONL ``{"id","text","label"}``) are measured too and never trained on.

Stage 2 learns from out-of-fold stage-1 scores (5 folds) so that it does not trust an
over-fitted ``p1``; its regularization and the cascade's routing are chosen by
cross-validation on the training part only.

Run: ``piyao train --model default`` (or ``python -m classifier.train_default``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from classifier.default import CascadeConfig, DefaultModel, Stage2, route_mask, stage1_features, stage2_features
from classifier.encoder import ENGINES, E5Encoder
from classifier.evaluate import DEFAULT_THRESHOLD, metrics, remove_near_duplicates
from classifier.knowledge import Knowledge, Neighbours, credible_statements, retrieval_features, rumor_statement
from classifier.starter import StarterConfig, StarterModel
from classifier.train import DATA_FILES, DATASET_TERMS, _Prepared, _counts, dedup, load_claims

__all__ = ["read_debunk_rows", "statements_from_debunks", "train_default", "fit_default", "main"]

ROUTE_BUDGET = 0.15  # at most this share of Weibo-like traffic goes to the e5 stage (keeps >= 100 claims/s)


def read_debunk_rows(files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Debunk rows ``{title, url, source, text}`` from CSV/JSONL export files (source = file stem when absent)."""
    from store.importer import read_file

    rows: list[dict[str, Any]] = []
    for f in files:
        path = Path(f)
        for row in read_file(path):
            if isinstance(row, dict) and (row.get("title") or "").strip():
                rows.append({"title": row["title"], "url": row.get("url") or "", "source": row.get("source") or path.stem,
                             "text": row.get("text") or ""})
    return rows


def statements_from_debunks(rows: Sequence[dict[str, Any]], knowledge: Knowledge) -> list[dict[str, Any]]:
    """Training records drawn from debunks; ``kb`` names the knowledge entry they came from (excluded from their features)."""
    from classifier.knowledge import _lex_input
    from crawlers.extract import clean_text

    where = {_lex_input(t): i for i, t in enumerate(knowledge.titles)}
    out: list[dict[str, Any]] = []
    for n, row in enumerate(rows):
        kb = where.get(_lex_input(" ".join(str(row["title"]).split())))
        claim = rumor_statement(row["title"])
        if claim:
            out.append({"id": f"debunk:{n}:title", "text": claim, "label": 1, "dataset": "debunk_statements", "kb": kb})
        for j, sent in enumerate(credible_statements(clean_text(row.get("text") or ""))):
            out.append({"id": f"debunk:{n}:s{j}", "text": sent, "label": 0, "dataset": "debunk_advice", "kb": kb})
    return out


def _progress_cb(progress: bool, total: int, description: str) -> tuple[Any, Callable[[int], None]]:
    if not progress:
        return None, lambda n: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    bar.start()
    task = bar.add_task(description, total=total)
    return bar, lambda n: bar.advance(task, n)


def _encode(encoder: E5Encoder, texts: Sequence[str], progress: bool, description: str) -> np.ndarray:
    bar, cb = _progress_cb(progress, len(texts), description)
    try:
        return encoder.encode(list(texts), progress=cb)
    finally:
        if bar is not None:
            bar.stop()


def _oof_linear(records: Sequence[dict], prep: _Prepared, config: StarterConfig, folds: int, seed: int, log: Any) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    y = np.array([r["label"] for r in records])
    oof = np.zeros(len(records))
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y), 1):
        m = StarterModel(config)
        sub = [records[i] for i in tr]
        m.fit([r["text"] for r in sub], y[tr].tolist(), prepared=prep(sub))
        oof[te] = m.predict_proba(prepared=prep([records[i] for i in te]))
        log(f"  stage-1 fold {k}/{folds} done")
    return oof


def _retrieval(knowledge: Knowledge, records: Sequence[dict], vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    exclude = [r.get("kb") for r in records]
    lex = knowledge.lexical_top([r["text"] for r in records], exclude=exclude)
    dense = knowledge.dense_top(vecs, exclude=exclude)
    retrieval = retrieval_features(dense, lex)
    return lex, retrieval


def _oof_stage(X: np.ndarray, y: np.ndarray, *, C: float, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(len(y))
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y):
        oof[te] = Stage2.fit(X[tr], y[tr], C=C, seed=seed).proba(X[te])
    return oof


def _choose_c(X: np.ndarray, y: np.ndarray, seed: int, log: Any) -> tuple[float, np.ndarray]:
    """Stage-2 C by 3-fold CV macro-F1 on the training part; returns (C, out-of-fold stage-2 scores)."""
    from sklearn.model_selection import StratifiedKFold

    best: tuple[float, float, np.ndarray] = (-1.0, 0.5, np.zeros(len(y)))
    for C in (0.003, 0.01, 0.03, 0.1, 0.3):
        oof = np.zeros(len(y))
        for tr, te in StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y):
            oof[te] = Stage2.fit(X[tr], y[tr], C=C, seed=seed).proba(X[te])
        f = metrics(y, oof)["macro_f1"]
        log(f"  stage-2 C={C}: CV macro-F1 {f:.4f}")
        if f > best[0]:
            best = (f, C, oof)
    return best[1], best[2]


def _choose_routing(y: np.ndarray, p1: np.ndarray, p2: np.ndarray, lex_top1: np.ndarray, weibo_mask: np.ndarray, budget: float) -> CascadeConfig:
    """Routing thresholds that maximize cascade macro-F1 on out-of-fold scores within the routing budget."""
    best: tuple[float, CascadeConfig] = (-1.0, CascadeConfig())
    for low in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4):
        for high in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
            for lexical in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 1.01):
                c = CascadeConfig(route_low=low, route_high=high, route_lexical=lexical)
                routed = route_mask(p1, lex_top1, c)
                if routed[weibo_mask].mean() > budget:
                    continue
                f = metrics(y, np.where(routed, p2, p1))["macro_f1"]
                if f > best[0] + 1e-9:
                    best = (f, c)
    return best[1]


def _measure(name: str, y: np.ndarray, p1: np.ndarray, p2: np.ndarray, routed: np.ndarray, log: Any,
             parts: dict[str, Any] | None = None) -> dict[str, Any]:
    cascade = np.where(routed, p2, p1)
    out: dict[str, Any] = {
        **(parts or {}),
        "n": int(len(y)),
        "linear": metrics(y, p1),
        "stage2_everywhere": metrics(y, p2),
        "cascade": metrics(y, cascade),
        "routed_share": float(routed.mean()) if len(y) else 0.0,
    }
    if parts:
        log(f"{name}: n={len(y)} macro-F1 style model {parts['style_model']['macro_f1']:.4f} · knowledge model "
            f"{parts['knowledge_model']['macro_f1']:.4f}")
    log(f"{name}: n={len(y)} macro-F1 stage 1 {out['linear']['macro_f1']:.4f} · e5 stage everywhere "
        f"{out['stage2_everywhere']['macro_f1']:.4f} · cascade {out['cascade']['macro_f1']:.4f} "
        f"(accuracy {out['cascade']['accuracy']:.4f}, routed {out['routed_share']:.1%})")
    return out


def _read_eval(path: Path) -> list[dict[str, Any]]:
    """Evaluation JSONL ``{"id","text","label"}`` read as ``piyao eval`` reads it (unproven items are left out)."""
    from classifier.report import read_labelled

    records, _ = read_labelled(path)
    return [dict(r, dataset=path.stem) for r in records]


def train_default(
    claims_dir: str | Path,
    debunk_files: Sequence[str | Path],
    out_dir: str | Path,
    **kwargs: Any,
) -> dict[str, Any]:
    """Read the labelled claim sets and debunk exports, then ``fit_default``."""
    claims_dir = Path(claims_dir)
    files = [claims_dir / f for f in DATA_FILES.values()]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"labelled claim files not found: {', '.join(missing)}")
    rows = read_debunk_rows(debunk_files)
    if not rows:
        raise ValueError("no debunk articles read; pass debunk export files (CSV/JSONL)")
    return fit_default(load_claims(files), rows, out_dir, **kwargs)


def fit_default(
    claims: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    cache_path: str | Path | None = None,
    engine: str | None = None,
    topics_dir: str | Path | None = None,
    review_records: Sequence[dict[str, Any]] = (),
    eval_files: Sequence[str | Path] = (),
    seed: int = 0,
    folds: int = 5,
    route_budget: float = ROUTE_BUDGET,
    max_chars: int = 256,
    progress: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Train the cascade on ``claims`` (records with ``dataset``; ``weibo21_val`` ones are the held-out set)
    and debunk ``rows`` ({title, url, source, text}); measure; retrain on all; save to ``out_dir``."""
    t0 = time.time()
    random.seed(seed)
    np.random.seed(seed)
    encoder = E5Encoder(cache_path=cache_path, max_chars=max_chars, engine=engine)

    log("building the knowledge of known debunks")
    bar, cb = _progress_cb(progress, len(rows), "encoding debunk titles")
    try:
        knowledge = Knowledge.build(rows, encoder, progress=cb)
    finally:
        if bar is not None:
            bar.stop()
    statements = statements_from_debunks(rows, knowledge)
    reviews = [dict(r, dataset="reviews") for r in review_records]
    everything = list(claims) + reviews + statements
    dd_stats: dict[str, int] = {}
    records, removed = dedup(everything, stats=dd_stats, progress=progress)
    log(f"records: {len(everything)} read, {removed} duplicates removed, {len(records)} kept "
        f"({sum(r['dataset'] == 'debunk_statements' for r in records)} rumor statements and "
        f"{sum(r['dataset'] == 'debunk_advice' for r in records)} advice sentences from {len(rows)} debunks; "
        f"{sum(r['dataset'] == 'reviews' for r in records)} editor decisions)")

    test = [r for r in records if r["dataset"] == "weibo21_val"]
    train = [r for r in records if r["dataset"] != "weibo21_val"]
    test, overlap = remove_near_duplicates(test, train, threshold=DEFAULT_THRESHOLD)
    log(f"held-out Weibo21 val: {len(test)} posts ({overlap} near-duplicating training data removed)")

    config = StarterConfig(seed=seed)
    prep = _Prepared(train + test, progress)
    y_tr = np.array([r["label"] for r in train])
    y_te = np.array([r["label"] for r in test])

    is_style = np.array([not r["dataset"].startswith("debunk") for r in train])
    style_train = [r for r, keep in zip(train, is_style) if keep]
    log("stage 1: out-of-fold scores of the knowledge model (all training data) and the style model (labelled posts)")
    pk_oof = _oof_linear(train, prep, config, folds, seed, log)
    ps_oof = np.zeros(len(train))
    ps_oof[is_style] = _oof_linear(style_train, prep, config, folds, seed, log)
    style_tr = StarterModel(config).fit([r["text"] for r in style_train], y_tr[is_style].tolist(), prepared=prep(style_train))
    if (~is_style).any():  # statements are out-of-sample for the style model
        ps_oof[~is_style] = style_tr.predict_proba(prepared=prep([r for r, keep in zip(train, is_style) if not keep]))
    knowledge_tr = StarterModel(config).fit([r["text"] for r in train], y_tr.tolist(), prepared=prep(train))
    pk_te = knowledge_tr.predict_proba(prepared=prep(test))
    ps_te = style_tr.predict_proba(prepared=prep(test))

    vec_tr = _encode(encoder, [r["text"] for r in train], progress, "e5: training texts")
    vec_te = _encode(encoder, [r["text"] for r in test], progress, "e5: held-out texts")
    lex_tr, ret_tr = _retrieval(knowledge, train, vec_tr)
    lex_te, ret_te = _retrieval(knowledge, test, vec_te)
    neighbours_tr = Neighbours(vec_tr, y_tr)
    ret_tr = np.column_stack([ret_tr, neighbours_tr.features(vec_tr, exclude=list(range(len(train))))])
    ret_te = np.column_stack([ret_te, neighbours_tr.features(vec_te)])

    F1_tr = stage1_features(ps_oof, pk_oof, lex_tr)
    F1_te = stage1_features(ps_te, pk_te, lex_te)
    p1_oof = _oof_stage(F1_tr, y_tr, C=1.0, seed=seed)
    stage1_tr = Stage2.fit(F1_tr, y_tr, C=1.0, seed=seed)
    p1_te = stage1_tr.proba(F1_te)
    X_tr = stage2_features(p1_oof, vec_tr, ret_tr)
    X_te = stage2_features(p1_te, vec_te, ret_te)
    parts_te = {"style_model": metrics(y_te, ps_te), "knowledge_model": metrics(y_te, pk_te)}

    log("stage 2: choosing regularization by 3-fold CV on the training part")
    C, p2_oof = _choose_c(X_tr, y_tr, seed, log)
    weibo_tr = np.array([r["dataset"].startswith("weibo21") for r in train])
    cascade = _choose_routing(y_tr, p1_oof, p2_oof, lex_tr[:, 0], weibo_tr, route_budget)
    log(f"routing: p1 in [{cascade.route_low}, {cascade.route_high}] or lexical match >= {cascade.route_lexical} "
        f"(routes {route_mask(p1_oof[weibo_tr], lex_tr[weibo_tr, 0], cascade).mean():.1%} of Weibo21 training posts)")
    stage2_tr = Stage2.fit(X_tr, y_tr, C=C, seed=seed)
    p2_te = stage2_tr.proba(X_te)
    routed_te = route_mask(p1_te, lex_te[:, 0], cascade)
    report: dict[str, Any] = {"held_out": {"weibo21_val": _measure("weibo21_val (held out)", y_te, p1_te, p2_te, routed_te, log, parts_te)}}
    report["held_out"]["weibo21_val"]["removed_near_duplicates"] = overlap

    for ef in eval_files:
        recs = _read_eval(Path(ef))
        recs, ov = remove_near_duplicates(recs, train, threshold=DEFAULT_THRESHOLD)
        texts = [r["text"] for r in recs]
        y = np.array([r["label"] for r in recs])
        from classifier.starter import prepare

        prepared = prepare(texts)
        pk, ps = knowledge_tr.predict_proba(prepared=prepared), style_tr.predict_proba(prepared=prepared)
        vec = encoder.encode(texts)
        lex, ret = _retrieval(knowledge, recs, vec)
        ret = np.column_stack([ret, neighbours_tr.features(vec)])
        p1 = stage1_tr.proba(stage1_features(ps, pk, lex))
        p2 = stage2_tr.proba(stage2_features(p1, vec, ret))
        routed = route_mask(p1, lex[:, 0], cascade)
        m = _measure(Path(ef).name, y, p1, p2, routed, log, {"style_model": metrics(y, ps), "knowledge_model": metrics(y, pk)})
        m["removed_near_duplicates"] = ov
        report["held_out"][Path(ef).name] = m

    log("final model: retraining on training + held-out data")
    all_recs = train + test
    y_all = np.concatenate([y_tr, y_te])
    linear = StarterModel(config).fit([r["text"] for r in all_recs], y_all.tolist(), prepared=prep(all_recs))
    style_all = style_train + test
    style = StarterModel(config).fit([r["text"] for r in style_all], [r["label"] for r in style_all], prepared=prep(style_all))
    # Held-out rows carry out-of-sample scores from the train-only models.
    stage1 = Stage2.fit(np.vstack([F1_tr, F1_te]), y_all, C=1.0, seed=seed)
    stage2 = Stage2.fit(np.vstack([X_tr, X_te]), y_all, C=C, seed=seed)
    neighbours = Neighbours(np.vstack([vec_tr, vec_te]), y_all)
    topics = None
    if topics_dir is not None and Path(topics_dir).is_dir():
        from classifier.topics import TopicModel

        topics = TopicModel.load(topics_dir)
        topics.source_dir = Path(topics_dir)
    created = datetime.now(timezone.utc)
    meta = {
        "version": "default-" + created.strftime("%Y%m%d%H%M%S"),
        "created": created.isoformat(timespec="seconds"),
        "encoder": encoder.name,
        "stage2_C": C,
        "training": {
            "records": len(all_recs),
            "by_dataset": _counts(all_recs),
            "dedup": dd_stats,
            "debunk_articles": len(rows),
            "knowledge_titles": len(knowledge),
        },
        "metrics": report["held_out"],
        "seconds": round(time.time() - t0, 1),
        "python": platform.python_version(),
    }
    cascade.max_chars = max_chars
    model = DefaultModel(linear, stage2, knowledge, cascade=cascade, style=style, stage1=stage1, neighbours=neighbours, topics=topics, meta=meta, encoder=encoder)
    out = Path(out_dir)
    model.save(out)
    try:
        from classifier.fingerprints import write_fingerprints

        write_fingerprints([r["text"] for r in all_recs], out)
    except ImportError:  # pragma: no cover - fingerprints ship with the package
        pass
    write_default_card(out, meta, cascade)
    report.update({"model": str(out), "version": meta["version"], "seconds": meta["seconds"], "cascade": cascade.to_dict(),
                   "encoder_cache": {"encoded": encoder.encoded, "hits": encoder.hits}})
    encoder.close()
    return report


def write_default_card(out: Path, meta: dict[str, Any], cascade: CascadeConfig) -> None:
    m = meta["metrics"]
    lines = [
        f"# Model card: piyao default classifier `{meta['version']}`",
        "",
        f"Created {meta['created']}. Kind `default`: a cascade (classifier/default.py).",
        "",
        "## What it does",
        "Scores a Chinese text with P(not credible): rumor (谣言) or pseudoscience (伪科学, when the topic model says",
        "封建迷信与伪科学). Stage 1 scores everything: two jieba word + character TF-IDF linear models (the style model,",
        "trained on the labelled posts; the knowledge model, trained on them plus rumor statements and advice sentences",
        "drawn from debunks) and the lexical similarity to known debunk titles, combined by logistic regression. Stage 2 (frozen",
        f"multilingual-e5-small embeddings from `{meta['encoder']}`, similarity to known debunk titles, the verdicts of the",
        "nearest labelled training texts in e5 space (neighbours.safetensors: their vectors and 0/1 labels), the stage-1 logit →",
        "logistic regression) runs only where stage 1 is unsure "
        f"(p1 in [{cascade.route_low}, {cascade.route_high}]) or where the text lexically resembles a known debunk "
        f"(≥ {cascade.route_lexical}).",
        "",
        "## Training data and terms",
        "- " + DATASET_TERMS["weibo21"],
        "- " + DATASET_TERMS["ced"],
        "- " + DATASET_TERMS["checked"],
        f"- Titles of {meta['training']['debunk_articles']} debunk articles from 12 Chinese outlets (HRDE collection, "
        "GitHub hush-cd/HRDE, Apache-2.0 repository; texts are the publishers' copyright). The model stores titles and URLs",
        "  only; rumor statements drawn from titles (label rumor) and advice sentences of the bodies (label credible) are",
        "  weak labels used for training and are not shipped.",
        "- Because Weibo21 and CHECKED are for research use only, so is this model.",
        "",
        f"Records after de-duplication: {meta['training']['records']} ({json.dumps(meta['training']['by_dataset'], ensure_ascii=False)}).",
        "",
        "## Held-out figures (printed by `piyao train --model default`)",
        "| set | n | style model | knowledge model | stage 1 | e5 stage everywhere | cascade macro-F1 | cascade accuracy | cascade ECE | routed to e5 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in m.items():
        style = f"{r['style_model']['macro_f1']:.4f}" if "style_model" in r else "—"
        know = f"{r['knowledge_model']['macro_f1']:.4f}" if "knowledge_model" in r else "—"
        lines.append(
            f"| {name} | {r['n']} | {style} | {know} | {r['linear']['macro_f1']:.4f} | {r['stage2_everywhere']['macro_f1']:.4f} | "
            f"{r['cascade']['macro_f1']:.4f} | {r['cascade']['accuracy']:.4f} | {r['cascade']['ece']:.4f} | {r['routed_share']:.1%} |"
        )
    lines += ["", "All figures are macro-F1 at threshold 0.5 unless named otherwise."]
    lines += [
        "",
        "Weibo21 val is the closest held-out set to Weibo21's official test split, which this project does not hold;",
        "routing and regularization were chosen by cross-validation on the training part, not on it.",
        "`health_machine_written.jsonl` (eval/) is a small machine-written proxy set of health rumors and credible health",
        "texts written for this project; it is not the target set and was never trained on.",
        "",
        "## Limits",
        "- Trained on Weibo posts and debunk titles up to the collection's date; new rumors that no debunk covers fall",
        "  back on style, which does not carry over to other genres.",
        "- The knowledge of debunks is frozen at training time: retrain (nightly) to add new debunks.",
    ]
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", "utf-8")


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/claims")
    parser.add_argument("--debunks", nargs="+", default=None)
    parser.add_argument("--out", default="models/default")
    parser.add_argument("--cache", default="var/cache/e5.sqlite")
    parser.add_argument("--topics", default="models/topics")
    parser.add_argument("--eval", nargs="*", default=["eval/health_machine_written.jsonl"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=ENGINES, default=None, help="what runs e5 (default: onnx)")
    parser.add_argument("--route-budget", type=float, default=ROUTE_BUDGET,
                        help="largest share of Weibo-like posts the cascade may send to the e5 stage")
    args = parser.parse_args(list(argv) if argv is not None else None)
    debunks = args.debunks or sorted(str(p) for p in Path("../shared/data/debunks").glob("*.csv"))
    report = train_default(args.data_dir, debunks, args.out, cache_path=args.cache, engine=args.engine, topics_dir=args.topics,
                           eval_files=[e for e in args.eval if Path(e).is_file()], seed=args.seed,
                           route_budget=args.route_budget)
    print(json.dumps(report, ensure_ascii=False, indent=2, default=str))


if __name__ == "__main__":
    main()
