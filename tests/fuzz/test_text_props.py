"""Property tests over classifier/text.py: normalization and tokenization of any text a crawler may bring.

Every claim, debunk and query goes through these functions, so they must accept any Unicode string
(control characters, bidi marks, emoji sequences, full-width forms, huge repeats) and keep their
invariants: tokens and n-grams are pieces of the normalized text, normalization is stable.
"""

from __future__ import annotations

import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fuzz.support import examples

from classifier.text import _is_word, char_ngrams, normalize, shingles, stopwords, tokenize, tokens_text

# Pieces a hostile or just messy post is made of: Chinese (simplified and traditional), full-width
# forms, emoji and ZWJ sequences, bidi controls, zero-width characters, URLs, mentions, hashtags,
# Weibo emoticons, control characters.
PIECES = [
    "隔夜菜", "致癌", "吃了", "會致癌", "臺灣", "转发", "紧急扩散", "！", "，", "。", "？", "ＡＢＣ１２３", "ｈｔｔｐ",
    "😀", "👨‍👩‍👧", "🇨🇳", "1️⃣", "\u200b", "\u200d", "\ufeff", "\u202e", "\u202d", "\u2066", "\u061c", "\u00a0",
    "\u3000", "\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "https://t.cn/A6abc", "www.example.com/x?y=1",
    "t.cn/Ab12", "@网友小明", "@", "#健康提醒#", "#", "[微笑]", "[", "]", "İ", "ß", "ﬁ", "Ⅻ", "①", "㍿", "ｶﾞ", "e\u0301",
    "\U0002a6a5", "\U000e0041", "\ufdfd", "\ufffd", " ", "  ", "AND", "OR", "NOT", "\"", "'", "*", "^", "(", ")",
]
messy = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=30).map("".join)
any_text = st.one_of(st.text(max_size=200), messy)


@settings(max_examples=examples(300), deadline=None)  # deadline=None: jieba loads its dictionary on the first example
@given(any_text)
@example("##a##")
@example("\u0130" * 3)
@example("哈" * 20_000)
@example("@" * 5000 + "#" * 5000)
def test_normalize_never_raises_and_is_clean(text: str) -> None:
    out = normalize(text)
    assert isinstance(out, str)
    assert out == out.strip()
    assert "  " not in out and "\n" not in out and "\t" not in out and "\u3000" not in out
    assert "\u200b" not in out and "\ufeff" not in out
    # NFKC's full-width forms are gone (the text was NFKC-normalized before the other steps).
    assert not any("\uff01" <= c <= "\uff5e" for c in out)


@settings(max_examples=examples(300), deadline=None)
@given(any_text)
@example("##a##")
@example("#a#b#")
@example("x##隔夜##菜")
@example("ſ")
@example("###a###")
@example("#" + "隔" * 39 + "👨\u200d👩\u200d👧" + "#")  # 41 characters between the '#', 40 once the emoji is gone
@example("学习C#语言")  # a "#" that cannot pair stays
def test_normalize_is_idempotent(text: str) -> None:
    """A normalized text normalizes to itself, so ``tokenize(..., normalized=True)`` agrees with ``tokenize``.

    No exception, unpaired '#' included: "##a##" once normalized to "# a #", which a second pass paired.
    """
    once = normalize(text)
    assert normalize(once) == once
    assert tokenize(once) == tokenize(text)


def test_leftover_hashes_are_dropped_only_when_they_would_pair() -> None:
    assert normalize("##a##") == normalize("###a###") == "a"
    assert normalize("#" + "隔" * 39 + "👨\u200d👩\u200d👧" + "#") == "隔" * 39
    assert normalize("#健康提醒#隔夜菜致癌") == "健康提醒 隔夜菜致癌"  # an ordinary hashtag: as before
    assert normalize("学习C#语言") == "学习c#语言" and normalize("#a#b#") == "a b#"
    assert tokenize("学习C#语言") == ["学习", "c#", "语言"]


@settings(max_examples=examples(200), deadline=None)
@given(any_text)
def test_tokens_are_words_of_the_normalized_text(text: str) -> None:
    norm = normalize(text)
    tokens = tokenize(text)
    stop = stopwords()
    for t in tokens:
        assert t and t == t.strip() and "\x00" not in t
        assert t in norm, (t, norm)
        assert _is_word(t)
        assert t not in stop
    assert tokenize(norm, normalized=True) == tokens
    assert tokens_text(text) == " ".join(tokens)
    # Keeping stop words only adds tokens.
    kept = tokenize(text, keep_stopwords=True)
    assert [t for t in kept if t not in stop] == tokens


@settings(max_examples=examples(200), deadline=None)
@given(any_text, st.integers(min_value=1, max_value=8))
def test_char_ngrams_and_shingles(text: str, n: int) -> None:
    chars = [c for c in normalize(text) if _is_word(c)]
    grams = char_ngrams(text, n)
    assert len(grams) == max(0, len(chars) - n + 1)
    assert all(len(g) == n for g in grams)
    assert all(_is_word(c) for g in grams for c in g)
    assert "".join(g[0] for g in grams) == "".join(chars[: len(grams)])
    sh = shingles(text, n)
    assert bool(sh) == bool(chars)
    assert sh == (set(grams) if grams else {"".join(chars)} if chars else set())


@settings(max_examples=examples(100), deadline=None)
@given(st.text(alphabet=st.characters(categories=["Lo"]), min_size=1, max_size=40))
def test_chinese_text_keeps_its_letters(text: str) -> None:
    """Letters (Lo: hanzi, kana, ...) are content: normalization may convert or fold them, never drop them all."""
    letters = [c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) == "Lo"]
    if letters:
        assert normalize(text)
