"""classifier.text: the one normalization and tokenization."""

from classifier.text import normalize, shingles, stopwords, tokenize


def test_full_width_becomes_half_width():
    assert normalize("ＡＢＣ１２３！") == "abc123!"


def test_traditional_becomes_simplified():
    assert normalize("隔夜菜會致癌嗎") == "隔夜菜会致癌吗"


def test_urls_mentions_and_emoji_removed():
    text = "@科普君 喝醋能软化血管😀[微笑] 详见 http://t.cn/RUYfUht 和 https://example.com/a?b=1 #健康#"
    out = normalize(text)
    assert "http" not in out and "t.cn" not in out and "example.com" not in out
    assert "@" not in out and "科普君" not in out
    assert "😀" not in out and "[微笑]" not in out
    assert "喝醋能软化血管" in out
    assert "健康" in out and "#" not in out


def test_user_dictionary_terms_kept_whole():
    toks = tokenize("吃隔夜菜会致癌吗？量子波动速读是智商税")
    assert "隔夜菜" in toks
    assert "量子波动速读" in toks


def test_stop_words_and_punctuation_dropped():
    toks = tokenize("这个的了吗，隔夜菜！！！")
    assert "隔夜菜" in toks
    assert not any(t in stopwords() for t in toks)
    assert "！" not in toks and "!" not in toks
    assert "的" not in toks


def test_shingles_are_character_5_grams():
    sh = shingles("隔夜菜会致癌", 5)
    assert sh == {"隔夜菜会致", "夜菜会致癌"}


def test_emoji_precheck_covers_every_emoji() -> None:
    """normalize() skips the (slow) emoji pass for texts without a candidate code point: it must miss none."""
    import emoji

    from classifier.text import _EMOJI_CANDIDATE_RE, normalize

    assert [e for e in emoji.EMOJI_DATA if not _EMOJI_CANDIDATE_RE.search(e)] == []
    assert normalize("转发👍🏻扩散❤️ 1️⃣ 🇨🇳") == "转发 扩散"
    assert normalize("「隔夜菜」会致癌？。、") == normalize("「隔夜菜」会致癌？。、")
