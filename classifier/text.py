"""One normalization and tokenization for the whole project.

The classifier and both index backends call these functions, so a claim, a
debunk and a query are always cut into the same tokens.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Iterable

import emoji
import jieba
import opencc

__all__ = [
    "normalize",
    "tokenize",
    "tokens_text",
    "char_ngrams",
    "shingles",
    "stopwords",
]

_URL_RE = re.compile(r"(?:https?://|www\.)[^\s\u3000-\u303f\uff01-\uff5e<>\"']+", re.I)
_SHORT_URL_RE = re.compile(r"\b(?:t\.cn|sinaurl\.cn|dwz\.cn|url\.cn)/[A-Za-z0-9]+", re.I)
# @mentions end at whitespace, punctuation or a colon; Weibo handles are up to 30 chars.
_MENTION_RE = re.compile(r"@[\w\u4e00-\u9fff\-]{1,30}")
# Weibo emoticons such as [微笑] or [泪]; keep longer bracketed text, which is content.
_EMOTICON_RE = re.compile(r"\[[\u4e00-\u9fffA-Za-z]{1,5}\]")
_HASHTAG_RE = re.compile(r"#([^#\n]{1,40})#")
_SPACE_RE = re.compile(r"[\s\u200b\u200c\u200d\ufeff\u00a0\u3000]+")
_PUNCT_CATEGORIES = ("P", "S", "Z", "C")

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _tokenizer() -> jieba.Tokenizer:
    """A private jieba tokenizer carrying the project dictionary (global jieba state stays untouched)."""
    jieba.setLogLevel(60)
    tok = jieba.Tokenizer()
    with _lock:
        tok.initialize()
        userdict = resources.files("classifier").joinpath("data/userdict.txt")
        with resources.as_file(userdict) as path:
            tok.load_userdict(str(path))
    return tok


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    text = resources.files("classifier").joinpath("data/stopwords.txt").read_text("utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


# Every emoji sequence holds at least one of these code points (pictographs, dingbats, symbols,
# keycap and variation selectors, ZWJ, tags); a text without any needs no emoji pass.
_EMOJI_CANDIDATE_RE = re.compile(
    "[\u00a9\u00ae\u203c\u2049\u20e3\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u25fe"
    "\u2600-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\ufe0f\u200d"
    "\U0001f000-\U0001faff\U000e0020-\U000e007f]"
)


def normalize(text: str, *, keep_urls: bool = False) -> str:
    """Canonical form of a Chinese text.

    Full-width forms become half-width (NFKC), Traditional becomes Simplified
    (OpenCC t2s), URLs and @mentions are dropped (or kept with ``keep_urls``),
    emoji and Weibo emoticons are removed, hashtags keep their words, and all
    whitespace collapses to single spaces. Latin letters are lower-cased.
    """
    if not text:
        return ""
    # Lower-cased before the passes below, which then see the final letters: "İ" lowers to "i" and a
    # combining dot, a word boundary that a second pass would find ("İt.cn/x" kept its short URL once).
    text = unicodedata.normalize("NFKC", text).lower()
    if not keep_urls:
        text = _URL_RE.sub(" ", text)
        text = _SHORT_URL_RE.sub(" ", text)
    text = _MENTION_RE.sub(" ", text)
    text = _EMOTICON_RE.sub(" ", text)
    text = _HASHTAG_RE.sub(r" \1 ", text)
    if _EMOJI_CANDIDATE_RE.search(text):  # the emoji library is exact but slow; most texts have none
        text = emoji.replace_emoji(text, replace=" ")
    text = _converter().convert(text)
    text = _SPACE_RE.sub(" ", text).strip()
    if "#" in text and _HASHTAG_RE.search(text):
        # '#' left unpaired above can pair now that hashtags, emoji and runs of spaces are gone ("##a##"
        # gave "# a #"; a hashtag of 41 characters holding an emoji is 40 without it), so a second pass
        # would strip them: drop every leftover '#' now, and normalize is idempotent. Text whose leftover
        # '#' cannot pair ("c#", "#a#b#" -> "a b#") keeps them, as before.
        text = _SPACE_RE.sub(" ", text.replace("#", " ")).strip()
    return text


def _is_word(token: str) -> bool:
    return any(unicodedata.category(ch)[0] not in _PUNCT_CATEGORIES for ch in token)


def tokenize(text: str, *, normalized: bool = False, keep_stopwords: bool = False) -> list[str]:
    """jieba words of ``text`` after normalization, without punctuation and stop words."""
    if not normalized:
        text = normalize(text)
    if not text:
        return []
    stop = stopwords()
    out = []
    for tok in _tokenizer().lcut(text, HMM=True):
        tok = tok.strip()
        if not tok or not _is_word(tok):
            continue
        if not keep_stopwords and tok in stop:
            continue
        out.append(tok)
    return out


def tokens_text(text: str) -> str:
    """Space-joined tokens, the form both search backends index and query."""
    return " ".join(tokenize(text))


def char_ngrams(text: str, n: int = 2) -> list[str]:
    """Character n-grams over the normalized text with spaces and punctuation removed."""
    chars = [c for c in normalize(text) if _is_word(c)]
    return ["".join(chars[i : i + n]) for i in range(max(0, len(chars) - n + 1))]


def shingles(text: str, k: int = 5) -> set[str]:
    """Character k-shingles used for near-duplicate detection (MinHash)."""
    grams = char_ngrams(text, k)
    if not grams:
        chars = "".join(c for c in normalize(text) if _is_word(c))
        return {chars} if chars else set()
    return set(grams)


def batch_tokens(texts: Iterable[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]
