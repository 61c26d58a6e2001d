"""Debunk articles split into passages that carry their meaning.

Claim matching compares a short suspicious claim with debunk articles. A whole
article is mostly explanation and page furniture, so a claim should meet the
part of the article that states the rumor, or the part that gives the verdict,
not the boilerplate. ``split_passages`` cuts an article (title + text, the text
as ``crawlers.extract.clean_text`` leaves it: one paragraph per line) into

* one ``title`` passage: the title without outlet markers (``#微博辟谣#``,
  ``捉谣记|``, ``｜百度辟谣``, column prefixes such as ``健康真知｜``);
* ``rumor`` passages: the rumor as stated. The claim ``rumor_statement`` finds
  in the title (or the quoted claim of a title that names it a rumor:
  编造“牛肉涨价”谣言 → 牛肉涨价), sections headed 流言/谣言/流传说法/流传内容/
  网传/误区… (at most ``max_chars`` of a section; the rest is body), and
  sentences that introduce a claim (网传…, 近日网上流传…, 有网友称…, 有说法称…,
  网帖称…), the introducing marker dropped;
* ``verdict`` passages: sections headed 真相/结论/事实/核实/辟谣/要点/小结/总结/
  专家提醒/鉴定结果… (up to three chunks; a subheading line ends a section), and
  sentences that give a verdict (经核实…, …系谣言, 该说法不实, 没有科学依据,
  …辟谣称…);
* ``body`` passages: the rest, cut at sentence ends (。！？；) into chunks of at
  most ``max_chars`` characters; chunks shorter than ``min_chars`` and page
  furniture (author, editor, reviewer and source credits, QR/share prompts,
  image captions, reference lists) are dropped.

Headings may stand on a line of their own ("真相：" then paragraphs), open a line
("流言：……") or, in WeChat articles whose text comes as one line, be glued to the
sentence they open ("……副主任医师流言相信你……分析其实……结论 ……").

Guarantees: positions are 0, 1, 2… in article order; no two passages have the
same text (compared without spaces and punctuation; only the title's rumor
statement may equal the title less its "？"); no passage is longer than
``max_chars``: a sentence longer than that is cut at its last clause break
(，、：) in the second half of the window, or hard at ``max_chars`` when it has
none; the result is deterministic and the function never raises.

``python -m index.passages FILE.csv…`` reports rumor/verdict coverage, passages
per article and speed over debunk CSV exports (title, text columns).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Iterable

from classifier.knowledge import CUT_OBJECT, rumor_statement

__all__ = ["Passage", "KINDS", "split_passages", "article_passages", "clean_title"]

KINDS = ("title", "rumor", "verdict", "body")
# Rumor and verdict passages shorter than these say nothing ("谣言", "官方辟谣！"); "牛肉涨价" says enough.
_MIN_CLAIM = 4
_MIN_VERDICT = 6
# A rumor section contributes at most max_chars * this; the rest of it is body.
_RUMOR_SECTION_CHUNKS = 1
_VERDICT_SECTION_CHUNKS = 3


@dataclass(frozen=True)
class Passage:
    kind: str  # "title" | "rumor" | "verdict" | "body"
    text: str
    position: int  # order in the article, from 0


# -- title ------------------------------------------------------------------------------------------
_HASHTAG = re.compile(r"#[^#\n]{1,40}#")
_LABEL_TAG = re.compile(r"辟谣|谣言|流言|网警|净网|公告|附注|榜|说案|科普|提醒|资讯|热点|\d{4}")
_TITLE_PREFIX = re.compile(r"^\s*[^|｜丨]{1,8}?\s*[|｜丨]\s*(?=\S)")  # 捉谣记| 健康真知｜ 一周辟谣 |
_TITLE_SUFFIX = re.compile(r"\s*[|｜丨]\s*[^|｜丨]{0,12}(?:辟谣|谣言|求真|较真|明查)[^|｜丨]{0,4}\s*$")  # ｜百度辟谣
_WRAPPED = re.compile(r"^【([^【】]+)】$")


def _hashtags(text: str) -> str:
    """Weibo topics: label tags (#微博辟谣#, #网警说案#) dropped, headline tags (#…被刑拘#) kept as text."""
    if "#" not in text:
        return text
    return _HASHTAG.sub(lambda m: " " if len(m.group(0)) < 10 or _LABEL_TAG.search(m.group(0)) else m.group(0)[1:-1], text)


def clean_title(title: str) -> str:
    """The title without outlet markers and hashtags."""
    t = " ".join(str(title or "").split())
    t = _hashtags(t).strip()
    t = _TITLE_SUFFIX.sub("", t)
    t = _TITLE_PREFIX.sub("", t)
    m = _WRAPPED.match(t.strip())
    if m:
        t = m.group(1)
    return " ".join(t.split())


# -- sentences ------------------------------------------------------------------------------------
_ENDS = "。！？；!?;"
_CLOSERS = "”’」』）)》"
_SENT_SPLIT = re.compile(
    rf"(?:(?<=[{_ENDS}][{_CLOSERS}])|(?<=[{_ENDS}]))(?![{_CLOSERS}{_ENDS}])"
)
_CLAUSE = "，,、：:"
_KEY_DROP = re.compile(r"[\W_]+")


def _key(text: str) -> str:
    return _KEY_DROP.sub("", text).lower()


def _sentences(line: str, max_chars: int) -> list[str]:
    """The sentences of a line; a quotation “…” spanning sentence ends stays whole (up to max_chars)."""
    out: list[str] = []
    cur = ""
    for piece in _SENT_SPLIT.split(line):
        if not piece:
            continue
        cur += piece
        if cur.count("“") > cur.count("”") and len(cur) < max_chars:
            continue
        out.append(cur)
        cur = ""
    if cur:
        out.append(cur)
    return [s.strip() for s in out if s.strip()]


def _hard_split(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most max_chars: at a clause break in the second half of the window, else hard."""
    pieces: list[str] = []
    while len(text) > max_chars:
        window = text[:max_chars]
        cut = max(window.rfind(c) for c in _CLAUSE) + 1
        if cut <= max_chars // 2:
            cut = max_chars
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return [p for p in pieces if p]


# -- page furniture ----------------------------------------------------------------------------------
_BLOCK_TAGS = re.compile(
    r"<!--.*?-->|<(?:script|style)\b.*?</(?:script|style)\s*>|"
    r"</?(?:p|div|br|li|ul|ol|h[1-6]|tr|td|th|table|section|article|blockquote|hr|header|footer|figure|figcaption|pre)\b[^<>]{0,300}>",
    re.S | re.I,
)
_TAGS = re.compile(r"</?[A-Za-z][^<>]{0,300}>")
_SPACES = re.compile(r"[ \t\u00a0\u2002\u2003\u3000\u200b\ufeff]+")
_CREDIT = (
    r"(?:作者|文|撰文|编辑|责任编辑|责编|编审|主编|审核|审稿|审校|校对|核稿|终审|初审|复审|来源|资料来源|消息来源|文章来源|"
    r"信息来源|内容来源|稿件来源|新闻来源|图片来源|图片来自|图片来源于|图来自|图源|图文|摄影|摄像|记者|通讯员|实习生|策划|监制|出品|出品人|统筹|"
    r"制作|制图|设计|美编|排版|剪辑|配音|视频|本文专家|本文审稿|本文作者|查证者|审核专家|作者简介|原标题|原文标题|原题|"
    r"转自|转载自|本文来自|参考文献|参考资料|参考来源|版权声明|免责声明|声明|特别声明|联系方式|投稿邮箱|邮箱|微信号|ID)"
)
_CREDIT_START = re.compile(
    rf"^[（(\[【]?\s*(?:{_CREDIT}\s*[:：|丨｜/]|(?:作者|文|撰文|编辑|责任编辑|责编|审核|审稿|来源|记者|摄影|通讯员)\s+\S)"
)
# A credits block glued to the opening heading of a one-line WeChat article.
_GLUED_CREDITS = re.compile(rf"^[（(]?\s*{_CREDIT}\s*[:：|丨｜/].{{0,240}}?(?=流言|谣言|传言)")
_FURNITURE = re.compile(
    r"二维码|扫码|扫一扫|长按(?:识别|二维码|关注|图片)|点击(?:下方|上方|左下角|右下角|蓝字|阅读原文|图片|链接|进入|查看|关注|文末)|"
    r"关注(?:我们|本号|公众号|微信号|官方微信|官方微博)|转载(?:请|须|需|务必)|(?:未经|经)(?:本站|本网|作者)?授权|不得转载|禁止转载|"
    r"授权转载|版权(?:归|所有|声明|图库)|本文(?:封面)?图片?(?:来自|来源)|转发(?:给|到)|分享(?:给|到)(?:朋友|身边|更多)|"
    r"点(?:个)?(?:赞|在看)|设为星标|星标|欢迎(?:大家)?(?:多多)?(?:转发|分享|留言|关注|投稿|举报)|你可能还想看|"
    r"(?:往期|更多)(?:推荐|回顾|精彩|文章|辟谣)|推荐阅读|相关阅读|相关链接|阅读原文|展开全文|收起全文|网页链接|返回搜狐|查看更多|"
    r"^(?:END|—\s*END\s*—|-\s*END\s*-)$|^收起$"
)
_CAPTION_LINE = re.compile(
    r"^(?:图|图片|图片来自|图为|视频|截图|动图|资料图|示意图|配图|网传(?:图片|视频|截图)|(?:网络|新闻|视频|微博|网页|聊天记录|朋友圈)截图|"
    r"图源|图片来源|视频来源|来源)(?:[:：\s]|$)|(?:截图|截屏|图源[:：].{0,20}|供图|摄)$"
)
_INLINE_CAPTION = re.compile(
    r"[（(]\s*(?:图片|图|动图|视频)?(?:来源|源|来自|摄)\s*[:：][^（）()]{0,40}[）)]|"
    r"(?:图片|动图|视频|图)(?:来源|源)\s*[:：]\s*(?:[A-Za-z0-9][A-Za-z0-9.\-_ ]{0,30}|[^，。！？；\s]{1,20}?(?:截图|图库|网络|官网|视频|供图|摄))|"
    r"版权图库图片[，,]?\s*(?:不授权转载|转载(?:使用)?(?:可能)?引发版权纠纷)?|"
    r"\[\d{1,3}(?:\s*[-–,，]\s*\d{1,3})*\]|"
    r"[（(]\s*(?:编辑|责编|责任编辑|作者|记者|审核|审校|校对|实习生|通讯员)\s*[:：][^（）()]{0,40}[）)]"
)
_ARROWS = re.compile(r"[→↓↑▼▽▲►]")
_LATIN = re.compile(r"[A-Za-z0-9.,;:()\-/&'\[\]]")
_REFERENCE_CUE = re.compile(r"https?://|www\.|doi|ISBN|et al|\bpp?\.|\bVol\b|(?:19|20)\d\d|\[[JMCD]\]", re.I)
_ASIDE = re.compile(r"^[（(][^（）()]*[）)][。.]?$")  # "（CNN报道画面中……的人员。）": a caption
_EMPTY_BRACKETS = re.compile(r"【\s*】|\[\s*\]|（\s*）|\(\s*\)")
_WEIBO_TAIL = re.compile(r"(?:收起(?:全文)?[d∧]?|(?:\.{3}|…)?展开(?:全文)?[c∨]?|O?网页链接|L?[^\s]{0,20}的微博视频)\s*$")
_STOP_HEADING = re.compile(
    r"^[【\[（(]?\s*(?:参考文献|参考资料|参考来源|参考链接|References?|往期回顾|往期推荐|相关阅读|推荐阅读|延伸阅读|更多阅读|相关链接|"
    r"你可能还想看|猜你喜欢)\s*[】\]）)]?\s*[:：]?\s*$",
    re.I,
)
_REFERENCE_LINE = re.compile(r"^\s*(?:\[\d{1,3}\]|［\d{1,3}］|\d{1,3}[.、]\s*[A-Z][a-z]+,?\s+[A-Z])")
_WECHAT_FROM = re.compile(r"^以下文章来源于\s*(.*)$")


def _furniture(sentence: str) -> bool:
    s = sentence.strip()
    if _CREDIT_START.match(s):
        return True
    if len(s) <= 160 and _ARROWS.search(s):
        return True
    latin = len(_LATIN.findall(s))
    if latin >= 4 and latin > 0.6 * len(s.replace(" ", "")) and (len(s) < 60 or _REFERENCE_CUE.search(s)):
        return True
    if len(s) <= 120 and _FURNITURE.search(s):
        return True
    if len(s) <= 40 and _CAPTION_LINE.search(s):
        return True
    if len(s) <= 80 and _ASIDE.match(s):
        return True
    return False


# -- headings and markers ----------------------------------------------------------------------------
_NUM = r"[一二三四五六七八九十\d①②③④⑤⑥⑦⑧⑨⑩]{0,3}"
_RUMOR_WORDS = (
    r"流言|谣言|传言|网传|流传说法|流传内容|网传内容|网传说法|网络传言|传播内容|谣言内容|传闻|说法|误区|疑问|网友提问|网友疑问"
)
_VERDICT_WORDS = (
    r"真相|结论|事实|核实|辟谣|小结|总结|专家提醒|专家说|专家解读|专家观点|要点|查证|鉴定结果|查证结果|核查结果|核实结果|"
    r"真相解读|辟谣真相|较真鉴定|较真结论|权威解读|权威发布|官方回应|官方辟谣|回应|答案|正解|划重点|敲黑板|科学解读|辟谣结论"
)
_BODY_WORDS = r"分析|科普|解读|背景|知识点|小知识|知识链接|科普知识|详情|原文"
_HEADING_ALONE = re.compile(
    rf"^[【\[〔（(《#]?\s*(?P<word>{_RUMOR_WORDS}|{_VERDICT_WORDS}|{_BODY_WORDS}){_NUM}\s*[】\]〕）)》#]?\s*[:：]?$"
)
_HEADING_OPEN = re.compile(
    rf"^(?:[【\[〔]\s*(?P<w1>{_RUMOR_WORDS}|{_VERDICT_WORDS}|{_BODY_WORDS}){_NUM}\s*[】\]〕]\s*[:：]?|"
    rf"(?P<w2>{_RUMOR_WORDS}|{_VERDICT_WORDS}|{_BODY_WORDS}){_NUM}\s*(?:是|为)?\s*[:：])\s*"
)
# Headings glued to the sentence they open in one-line WeChat articles ("流言相信你……", "结论 靠吃……").
_HEADING_GLUED = re.compile(r"^(?P<w3>流言|分析|结论)(?=[\s“\"‘「（(A-Za-z0-9\u4e00-\u9fff])\s*")
_RUMOR_HEAD = re.compile(rf"^(?:{_RUMOR_WORDS})$")
_VERDICT_HEAD = re.compile(rf"^(?:{_VERDICT_WORDS})$")

_RUMOR_INTRO = re.compile(
    # 网上流传着一段视频称… / 朋友圈热传：… / 网上流传“…”
    # (in "…在网上疯传，" the statement came first: not an introduction)
    r"(?<!在)(?:(?:网上|网络上|网络|朋友圈|微信群|社交(?:媒体|平台)上?|群聊中|坊间|民间|网友间)(?:中|上|里)?(?:一直|广泛|大量)?"
    r"(?:流传|盛传|疯传|热传|传出|有传言|有说法|有人说|有消息)(?:着)?(?:一(?:条|则|段|篇|张|个|份|组|种)[^，。：:“]{0,14}?)?"
    r"(?:称|说(?![法明服起])|显示|：|:|，|,|(?=“))|"
    # 有网友称… / 网帖称… / 传言说… / 这则消息称…
    r"(?:(?:有|一些|不少|部分)?(?:网友|网民|网帖|帖子|传言|说法|流言|传闻|谣言|自媒体|短视频)|有人|有消息|(?:这(?:个|条|则|种)|该)(?:消息|说法|传言|帖子|视频|文章))"
    r"(?:发帖|发文|发布视频|在网上)?(?:称|说(?![法明服起])|声称|宣称|爆料)|"
    # 网传… (not 网传的…)
    r"网传(?![的播])|流传说法)"
)
_INTRO_TAIL = re.compile(r"^(?:[^，。：:“”\"]{0,16}?(?:称|说(?![法明服起])|显示|写道|表示|提到|内容为|内容是))?[\s：:，,]*")
_MEDIA_NOUN = re.compile(r"^(?:的)?(?:微博|视频|图片|截图|信息|消息|聊天记录|文章|帖子|内容|说法|通知|文件|照片|图|事件|录音|短信|网帖|传言)")
_QUOTED = re.compile(r"“([^“”]{6,200})”")
_VERDICT_SENTENCE = re.compile(
    r"(?:系|为|是|属|属于|纯属|均为|均系|确系|实为|就是|都是)[^，。！？；]{0,12}?(?:网络)?"
    r"(?:谣言|谣传|不实信息|虚假信息|虚假消息|假消息|不实消息|不实言论|虚假言论|不实内容|虚假内容|误读|误传|旧闻|假新闻|伪科学|无稽之谈|"
    r"网民PS|PS|摆拍|合成|编造|捏造|伪造|杜撰|编发|谣传)|"
    r"(?:编造|捏造|虚构|杜撰|伪造)(?:并|、)?(?:发布|散布|传播)?(?:了)?(?:的)?(?:虚假|不实)?(?:信息|消息|谣言|事实|视频|警情|险情|疫情|内容)|"
    r"故意(?:编造|虚构|散布|传播)|(?<![不])造谣(?!、|，|,)|"
    r"(?:说法|消息|信息|传言|内容|传闻|报道|言论|网传|流言|谣言)[^。，！？]{0,6}?"
    r"(?:不实|不属实|失实|有误|不准确|不科学|不可信|不靠谱|是假的|为假|并非事实|与事实不符|没有依据|缺乏依据)|"
    r"(?:没有|并无|缺乏|毫无|并没有|尚无|查无|无)(?:任何)?(?:充分|可靠|足够|确切)?的?(?:科学)?(?:的)?(?:依据|根据|证据|实据)|"
    r"经[^，。！？；]{0,10}?(?:核实|核查|查证|查实|调查|证实|求证)|经查|据(?:查证|核实|核查|调查)|(?:核实|查证|核查)(?:后)?发现|"
    r"辟谣(?:称|说|表示|指出|：|:)|予以辟谣|官方辟谣|发布辟谣|辟谣声明|"
    r"^(?:但|而|然而|其实)?[，,]?\s*(?:真相是|事实是)|"
    r"(?:鉴定结果|查证结果|核查结果|较真鉴定)\s*[:：]"
)


@dataclass
class _Buffer:
    kind: str = "body"
    parts: list[str] = field(default_factory=list)
    length: int = 0


class _Splitter:
    """One article's passages, collected in order."""

    def __init__(self, title: str, max_chars: int, min_chars: int):
        self.max_chars = max(1, int(max_chars))
        self.min_chars = max(0, int(min_chars))
        self.out: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        self.title_key = _key(title)
        self.buf = _Buffer()
        # The section a heading opened: its kind, the characters it may still take, and whether it ends with the line.
        self.section = "body"
        self.budget = 0
        self.inline = False
        self.first_in_section = False
        # The article came as one long line (WeChat exports): headings are glued to their text.
        self.one_line = False

    # -- output -------------------------------------------------------------------------------------
    def emit(self, kind: str, text: str, *, like_title: bool = False) -> None:
        text = " ".join(text.split()).strip(" ，,、：:")
        if kind == "body":
            least = self.min_chars
        else:
            least = min(_MIN_VERDICT if kind == "verdict" else _MIN_CLAIM, max(self.min_chars, 1))
        for piece in _hard_split(text, self.max_chars) if len(text) > self.max_chars else [text]:
            k = _key(piece)
            if len(piece) < least or not k or k in self.seen or (k == self.title_key and not like_title):
                continue
            self.seen.add(k)
            self.out.append((kind, piece))

    def flush(self) -> None:
        if self.buf.parts:
            text = ""
            for p in self.buf.parts:
                if text and text[-1] not in _ENDS + _CLOSERS + _CLAUSE:
                    text += " "
                text += p
            self.emit(self.buf.kind, text)
        self.buf = _Buffer(kind=self.buf.kind)

    def add(self, kind: str, sentence: str) -> None:
        """``sentence`` into the current chunk of ``kind``; chunks end at max_chars."""
        if self.buf.kind != kind:
            self.flush()
            self.buf.kind = kind
        if len(sentence) > self.max_chars:
            self.flush()
            pieces = _hard_split(sentence, self.max_chars)
            for p in pieces[:-1]:
                self.emit(kind, p)
            sentence = pieces[-1] if pieces else ""
            if not sentence:
                return
        if self.buf.length + len(sentence) + 1 > self.max_chars:
            self.flush()
        self.buf.parts.append(sentence)
        self.buf.length += len(sentence) + 1

    def single(self, kind: str, text: str) -> None:
        """A passage of its own (a rumor statement or verdict sentence found in the body).

        Of an over-long sentence only the first max_chars piece is the statement; the rest is body.
        """
        self.flush()
        pieces = _hard_split(text.strip(), self.max_chars)
        if pieces:
            self.emit(kind, pieces[0])
        for rest in pieces[1:]:
            self.add("body", rest)

    # -- sections -------------------------------------------------------------------------------------
    def open_section(self, word: str, inline: bool) -> None:
        self.flush()
        if _RUMOR_HEAD.match(word):
            self.section, self.budget = "rumor", self.max_chars * _RUMOR_SECTION_CHUNKS
        elif _VERDICT_HEAD.match(word):
            self.section, self.budget = "verdict", self.max_chars * _VERDICT_SECTION_CHUNKS
        else:
            self.section, self.budget = "body", 0
        self.inline = inline
        self.first_in_section = True

    def close_section(self) -> None:
        if self.section != "body":
            self.flush()
        self.section, self.budget, self.inline = "body", 0, False

    # -- text ---------------------------------------------------------------------------------------------
    def sentence(self, s: str) -> None:
        s = s.strip()
        if not s:
            return
        glued = self.one_line
        m = _GLUED_CREDITS.match(s)
        if m:
            s = s[m.end():].strip()
            glued = self.one_line = True  # credits glued to the opening heading: a one-line export
        heading = _HEADING_OPEN.match(s) or (_HEADING_GLUED.match(s) if glued else None)
        if heading:
            word = next((g for g in heading.groups() if g), "")
            self.open_section(word, inline=True)
            s = s[heading.end():].strip()
            if not s:
                self.inline = False  # "真相：" alone: the section runs over the following lines
                return
            if self.section == "rumor":
                stated = rumor_statement(s)
                if stated and len(s) <= 60:  # "谣言一：“南昌核酸检测打架致2人死亡”？南昌警方：谣言"
                    self.single("rumor", stated)
                    self.close_section()
                    return
        if _furniture(s) or _key(s) == self.title_key:
            return
        if self.section != "body" and self.budget > 0:
            kind = self.section
            if kind == "rumor" and self.first_in_section:
                s = _strip_intro(s) or s
            self.first_in_section = False
            self.budget -= len(s)
            self.add(kind, s)
            if self.budget <= 0:
                self.close_section()
            return
        stated = _rumor_in(s)
        if stated:
            verdict = _VERDICT_SENTENCE.search(stated)
            if verdict:  # "网传A，经核实系谣言": the statement, then the verdict
                cut = max(stated.rfind(c, 0, verdict.start()) for c in "，,：:") + 1
                if cut > 0:
                    self.single("rumor", stated[:cut])
                    self.single("verdict", stated[cut:])
                else:  # "全员居家办公是不实信息": a verdict on the statement
                    self.single("verdict", s)
                return
            self.single("rumor", stated)
        elif _VERDICT_SENTENCE.search(s):
            self.single("verdict", s)
        else:
            self.add("body", s)

    def line(self, ln: str) -> None:
        if len(ln) <= 100 and _CREDIT_START.match(ln):
            return  # "消息来源：……辟谣：……？假的！": a credits line, whatever its sentences
        alone = _HEADING_ALONE.match(ln)
        if alone:
            self.open_section(alone.group("word"), inline=False)
            return
        if self.section != "body" and not self.inline and _subheading(ln):
            # A short unpunctuated line is a subheading: it ends the section that has some text.
            if self.buf.kind == self.section and (self.buf.length >= self.min_chars):
                self.close_section()
        for s in _sentences(ln, self.max_chars):
            self.sentence(s)
        if self.inline:
            self.close_section()
        if self.buf.kind == "body" and self.buf.length >= self.max_chars // 2:
            self.flush()


_TITLE_QUOTE = re.compile(r"[“\"「]([^“”\"「」]{4,60})[”\"」]")
_TITLE_RUMOR_WORDS = re.compile(r"谣|编造|捏造|不实|网传|传言|传闻|假的|虚假")


def _title_rumor(title: str) -> str | None:
    """``rumor_statement(title)``; when the title quotes the rumor and names it one ("编造“牛肉涨价”谣言"), the quote."""
    stated = rumor_statement(title)
    if stated and CUT_OBJECT.search(stated):
        stated = None  # "打击整治网络谣言" → "打击整治网络": 谣言 was an object, not a verdict
    quotes = _TITLE_QUOTE.findall(title)
    if quotes and _TITLE_RUMOR_WORDS.search(title) and not (stated and any(q in stated for q in quotes)):
        return max(quotes, key=len)
    return stated


def _subheading(ln: str) -> bool:
    """A short line without a full stop, or a short question: a subheading ("人一生要吃多少食物？")."""
    if len(ln) > 30:
        return False
    if ln[-1] in "？?":
        return len(_sentences(ln, 10**6)) == 1
    return ln[-1] not in _ENDS + _CLOSERS + "，,"


def _strip_intro(s: str) -> str | None:
    """The statement a sentence introduces with a rumor marker, marker dropped; None when it has none."""
    m = _RUMOR_INTRO.search(s)
    if not m:
        return None
    rest = s[m.end():]
    tail = _INTRO_TAIL.match(rest)
    said = bool(tail and tail.group(0).strip(" ：:，,"))
    if tail:
        rest = rest[tail.end():]
    if m.group(0) == "网传" and not said and _MEDIA_NOUN.match(rest):
        rest = ""  # 网传视频 / 网传微博中的配图: a thing, not a statement
    rest = rest.strip(" ，,：:")
    if len(_key(rest)) >= 6 and not rest.startswith(("的", "了", "中", "过", "开", "着")):
        q = re.match(r"“([^“”]{6,})”", rest)  # 网传“……”的消息 / 网传：“……”
        return q.group(1) if q else rest
    quotes = sorted(_QUOTED.findall(s), key=len, reverse=True)
    return quotes[0] if quotes else None


def _rumor_in(s: str) -> str | None:
    stated = _strip_intro(s)
    if stated and len(_key(stated)) >= _MIN_CLAIM:
        return stated
    return None


def _prepare(text: str) -> list[str]:
    """The article's lines: HTML leftovers, hashtags, inline captions and reference lists removed."""
    t = str(text or "")
    if "<" in t:
        t = _TAGS.sub("", _BLOCK_TAGS.sub("\n", t))
    if "&" in t:
        t = html.unescape(t)
    lines: list[str] = []
    skip_account: str | None = None
    skip_next = False
    for raw in t.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        ln = _SPACES.sub(" ", raw).strip()
        if not ln:
            continue
        m = _WECHAT_FROM.match(ln)
        if m:  # WeChat "以下文章来源于X / ，作者Y / X / description" block
            skip_account = m.group(1).strip()
            continue
        if skip_account is not None:
            if ln.startswith(("，作者", ",作者")):
                continue
            if ln == skip_account:
                skip_next = True
                skip_account = None
                continue
            skip_account = None
        if skip_next:
            skip_next = False
            if len(ln) <= 60:
                continue
        if _STOP_HEADING.match(ln):
            break
        if _REFERENCE_LINE.match(ln):
            continue
        ln = _hashtags(ln)
        ln = _INLINE_CAPTION.sub("", ln)
        ln = _WEIBO_TAIL.sub("", ln)
        ln = re.sub(r"^【([^【】]{4,80})】", lambda mm: mm.group(1) + ("" if mm.group(1)[-1] in _ENDS else "。"), ln.strip())
        ln = _SPACES.sub(" ", _EMPTY_BRACKETS.sub("", ln)).strip().lstrip("】]")
        if ln:
            lines.append(ln)
    return lines


def split_passages(title: str, text: str, *, max_chars: int = 300, min_chars: int = 20) -> list[Passage]:
    """The passages of a debunk article (title, rumor, verdict, body), in article order; see the module doc."""
    try:
        return _split(title, text, max_chars, min_chars)
    except Exception:  # noqa: BLE001 - never fail an indexing run on an odd article: fall back to the title
        t = clean_title(str(title or ""))[: max(1, int(max_chars))]
        return [Passage("title", t, 0)] if t else []


def _split(title: str, text: str, max_chars: int, min_chars: int) -> list[Passage]:
    max_chars = max(1, int(max_chars))
    head = clean_title(_TAGS.sub(" ", html.unescape(str(title or ""))))
    sp = _Splitter(head, max_chars, min_chars)
    found: list[tuple[str, str]] = []
    if head:
        for piece in _hard_split(head, max_chars):
            found.append(("title", piece))
            break  # one title passage: an over-long title is cut to max_chars
        stated = _title_rumor(head)
        if stated:
            sp.emit("rumor", stated, like_title=True)  # the title as a statement: "竹炭食品能排毒养颜吗？" → "竹炭食品能排毒养颜"
    lines = _prepare(text)
    sp.one_line = len(lines) <= 3 and sum(len(ln) for ln in lines) >= 300
    for ln in lines:
        sp.line(ln)
    sp.close_section()
    sp.flush()
    found.extend(sp.out)
    return [Passage(kind, t, i) for i, (kind, t) in enumerate(found)]


def article_passages(title: str, text: str, *, max_chars: int = 300, min_chars: int = 20) -> list[Passage]:
    """``split_passages`` for a text as stored or crawled: runs ``crawlers.extract.clean_text`` first."""
    from crawlers.extract import clean_text

    return split_passages(title, clean_text(str(text or "")), max_chars=max_chars, min_chars=min_chars)


# -- measurement --------------------------------------------------------------------------------------
def _measure(paths: Iterable[str]) -> dict[str, float]:
    import csv
    import time

    from crawlers.extract import clean_text

    csv.field_size_limit(10**9)
    rows: list[tuple[str, str]] = []
    for p in paths:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            rows.extend((r.get("title") or "", clean_text(r.get("text") or "")) for r in csv.DictReader(fh))
    start = time.perf_counter()
    splits = [split_passages(t, x) for t, x in rows]
    elapsed = time.perf_counter() - start
    counts = sorted(len(s) for s in splits)
    n = len(splits) or 1
    return {
        "articles": len(splits),
        "with_rumor": sum(any(p.kind == "rumor" for p in s) for s in splits),
        "with_verdict": sum(any(p.kind == "verdict" for p in s) for s in splits),
        "with_both": sum(any(p.kind == "rumor" for p in s) and any(p.kind == "verdict" for p in s) for s in splits),
        "passages_mean": round(sum(counts) / n, 2),
        "passages_p95": counts[min(len(counts) - 1, int(0.95 * len(counts)))] if counts else 0,
        "articles_per_s": round(len(splits) / elapsed, 1) if elapsed else 0.0,
    }


if __name__ == "__main__":  # pragma: no cover - a measuring aid
    import json
    import sys

    print(json.dumps(_measure(sys.argv[1:]), ensure_ascii=False, indent=1))
