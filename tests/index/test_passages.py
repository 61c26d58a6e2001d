"""Splitting debunk articles into title / rumor / verdict / body passages (index.passages).

The articles here are synthetic, written in the structures the debunk outlets use;
the property tests also run over every record of demo/debunks.jsonl.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from index.passages import KINDS, Passage, _measure, article_passages, clean_title, split_passages

DEMO = Path(__file__).resolve().parents[2] / "demo" / "debunks.jsonl"
ENDS = "。！？；!?;”’」』）)》"


def kinds(passages: list[Passage], kind: str) -> list[str]:
    return [p.text for p in passages if p.kind == kind]


def joined(passages: list[Passage], kind: str) -> str:
    return "\n".join(kinds(passages, kind))


def check_invariants(passages: list[Passage], max_chars: int = 300) -> None:
    assert [p.position for p in passages] == list(range(len(passages)))
    assert all(p.kind in KINDS for p in passages)
    assert sum(p.kind == "title" for p in passages) <= 1
    assert all(p.text and p.text == p.text.strip() for p in passages)
    assert all(len(p.text) <= max_chars for p in passages)
    texts = [p.text for p in passages]
    assert len(texts) == len(set(texts))


# -- outlet structures ----------------------------------------------------------------------------------

def test_guokr_rumor_and_truth_sections() -> None:
    text = "\n".join([
        "流言：",
        "菠菜的含铁量在蔬菜里数一数二，贫血的人多吃菠菜就能把铁补回来。",
        "图片来源：网络截图",
        "真相：",
        "菠菜里的铁是非血红素铁，人体对它的吸收率不到百分之五，靠菠菜补铁并不现实。",
        "菠菜为什么被认为含铁多？",
        "有一种说法是早年的营养表把小数点点错了，这个故事本身也有争议。不过菠菜的铁含量确实不算突出。",
        "补铁更靠谱的来源是红肉、动物肝脏和动物血，它们含有吸收率更高的血红素铁。",
        "参考文献",
        "[1] Hallberg L. Bioavailability of dietary iron in man. Annu Rev Nutr 1981.",
        "[2] 某某营养学会. 膳食营养素参考摄入量. 2013.",
    ])
    ps = split_passages("吃菠菜能补铁吗？", text)
    check_invariants(ps)
    assert ps[0] == Passage("title", "吃菠菜能补铁吗？", 0)
    rumors = kinds(ps, "rumor")
    assert rumors[0] == "吃菠菜能补铁"  # rumor_statement of the title
    assert "菠菜的含铁量在蔬菜里数一数二，贫血的人多吃菠菜就能把铁补回来。" in rumors  # the marker is dropped
    assert not any("流言" in r for r in rumors)
    verdicts = kinds(ps, "verdict")
    assert any(v.startswith("菠菜里的铁是非血红素铁") for v in verdicts)
    # The subheading question closes the truth section; what follows is body.
    body = joined(ps, "body")
    assert "补铁更靠谱的来源是红肉" in body
    everything = "".join(p.text for p in ps)
    assert "Hallberg" not in everything and "参考文献" not in everything  # references dropped
    assert "图片来源" not in everything


def test_jiaozhen_claim_points_and_checker() -> None:
    text = "\n".join([
        "流传说法",
        "冬天整晚开着电热毯睡觉，电磁辐射会让人不孕不育。",
        "要点",
        "1. 电热毯工作时的电磁场强度远低于国家标准规定的公众暴露限值。",
        "2. 目前没有可靠证据表明家用电热毯会影响生育能力。",
        "查证者：王某某 | 某市妇幼保健院生殖医学科主任医师",
        "不过，电热毯长时间高温使用可能导致皮肤干燥，睡前预热、入睡后关闭是更稳妥的用法。",
    ])
    ps = split_passages("整晚开电热毯会导致不孕不育？", text)
    check_invariants(ps)
    assert kinds(ps, "rumor") == ["整晚开电热毯会导致不孕不育", "冬天整晚开着电热毯睡觉，电磁辐射会让人不孕不育。"]
    verdict = joined(ps, "verdict")
    assert "电磁场强度远低于国家标准" in verdict and "没有可靠证据" in verdict
    assert "查证者" not in "".join(p.text for p in ps)
    assert "睡前预热" in joined(ps, "body") or "睡前预热" in verdict


def test_piyao_org_network_claim_then_verification() -> None:
    text = "\n".join([
        "近日，网传“本市将从下月起对单号车牌实行全天限行”的消息在多个微信群转发。",
        "经核实，市交通管理部门从未发布过此类通知，该消息系谣言。",
        "市交管局表示，目前本市机动车限行政策没有调整，市民出行请以官方发布的信息为准。",
        "结论：该说法不实，请勿转发未经证实的信息。",
        "责任编辑：赵某",
    ])
    ps = split_passages("本市下月起单号车牌全天限行？", text)
    check_invariants(ps)
    rumors = kinds(ps, "rumor")
    assert "本市将从下月起对单号车牌实行全天限行" in rumors  # the quoted claim, marker and quotes dropped
    verdicts = kinds(ps, "verdict")
    assert "经核实，市交通管理部门从未发布过此类通知，该消息系谣言。" in verdicts
    assert "该说法不实，请勿转发未经证实的信息。" in verdicts
    assert "责任编辑" not in "".join(p.text for p in ps)


def test_wechat_one_line_article_with_glued_headings() -> None:
    # WeChat exports come as one line: credits, then 流言 / 分析 / 结论 glued to their text.
    text = (
        "作者：张某 某大学营养学院教授审核：李某 某医院肾内科主任医师"
        "流言每天喝够八杯水会加重肾脏负担，时间长了会把肾喝坏。这种说法在家族群里转发了很多次。"
        "分析健康成年人的肾脏每天能处理的水量远远超过八杯水，正常饮水不会造成损伤。"
        "只有在短时间内大量饮水时，才可能出现水中毒，这和日常喝水是两回事。"
        "版权图库图片，不授权转载"
        "肾功能不全的病人需要按医生的要求控制饮水量，这属于特殊情况。"
        "结论 正常人每天喝七八杯水不会伤肾，反而有助于预防尿路结石。"
        "责编｜某某（实习）文章由某某科普出品，转载请注明来源。"
    )
    ps = split_passages("每天喝八杯水会伤肾？", text)
    check_invariants(ps)
    rumors = kinds(ps, "rumor")
    assert rumors[0] == "每天喝八杯水会伤肾"
    assert any(r.startswith("每天喝够八杯水会加重肾脏负担") for r in rumors)
    assert kinds(ps, "verdict") == ["正常人每天喝七八杯水不会伤肾，反而有助于预防尿路结石。"]
    everything = "".join(p.text for p in ps)
    for furniture in ("作者", "审核", "版权图库", "转载", "责编"):
        assert furniture not in everything
    assert "水中毒" in joined(ps, "body")


def test_wechat_bracket_headings() -> None:
    text = "\n".join([
        "近日网上流传一段视频称，用吸管扎进西瓜里抽出的汁水发红，说明西瓜被打了色素针。",
        "【真相】",
        "西瓜瓤本身就含有番茄红素，汁水发红是正常的颜色。",
        "往西瓜里注射液体会让瓜瓤很快腐烂，商贩这样做得不偿失。",
        "【结论】这是一则没有科学依据的谣言，买西瓜时注意观察瓜皮有无针眼即可。",
        "扫描二维码关注我们，获取更多辟谣信息",
    ])
    ps = split_passages("西瓜被打了色素针？", text)
    check_invariants(ps)
    assert "用吸管扎进西瓜里抽出的汁水发红，说明西瓜被打了色素针。" in kinds(ps, "rumor")
    verdict = joined(ps, "verdict")
    assert "番茄红素" in verdict and "得不偿失" in verdict
    assert "这是一则没有科学依据的谣言，买西瓜时注意观察瓜皮有无针眼即可。" in kinds(ps, "verdict")
    assert "二维码" not in "".join(p.text for p in ps)


def test_weibo_piyao_post() -> None:
    text = (
        "#微博辟谣#【某县水库因地震溃坝系谣言】近日，有网友称某县水库因地震出现溃坝，下游三个村庄被淹。"
        "经核实，该水库大坝运行正常，网传视频系外地旧视频，该说法系谣言。#网警提醒# 请勿传播未经证实的信息。收起"
    )
    ps = split_passages("#微博辟谣# 某县水库因地震溃坝？", text)
    check_invariants(ps)
    assert ps[0].text == "某县水库因地震溃坝？"
    rumors = kinds(ps, "rumor")
    assert "某县水库因地震溃坝" in rumors
    assert "某县水库因地震出现溃坝，下游三个村庄被淹。" in rumors
    assert any(v.startswith("经核实，该水库大坝运行正常") for v in kinds(ps, "verdict"))
    everything = "".join(p.text for p in ps)
    assert "#" not in everything and "收起" not in everything


def test_numbered_rumors_and_misconceptions() -> None:
    text = "\n".join([
        "近期几则与天气有关的传言引发关注，记者逐一进行了核实。",
        "谣言一：“明天全市停课一天”？教育局：谣言",
        "市教育局表示，目前没有发布任何停课通知，各校按正常课表上课。",
        "误区二：下雨天不用涂防晒霜。",
        "真相：阴雨天紫外线依然能穿透云层，户外活动时间长的话仍需防晒。",
    ])
    ps = split_passages("这些天气传言不可信", text)
    check_invariants(ps)
    rumors = kinds(ps, "rumor")
    assert "明天全市停课一天" in rumors
    assert "下雨天不用涂防晒霜。" in rumors
    assert "阴雨天紫外线依然能穿透云层，户外活动时间长的话仍需防晒。" in kinds(ps, "verdict")


def test_verdict_sentences_inside_body() -> None:
    text = (
        "有说法称，隔夜茶含有大量致癌物，喝了容易得癌症。茶水放置一夜后，茶多酚会氧化，颜色变深，口感变差。"
        "目前没有科学依据表明隔夜茶会致癌。只要没有变质，隔夜茶可以喝，但不建议长期这样做。"
    )
    ps = split_passages("隔夜茶会致癌？", text)
    check_invariants(ps)
    assert "隔夜茶含有大量致癌物，喝了容易得癌症。" in kinds(ps, "rumor")
    assert "目前没有科学依据表明隔夜茶会致癌。" in kinds(ps, "verdict")
    assert "茶多酚会氧化" in joined(ps, "body")


def test_rumor_and_verdict_in_one_sentence() -> None:
    ps = split_passages("", "网传某景区明天起免费开放，经核实系谣言。")
    assert [(p.kind, p.text) for p in ps] == [("rumor", "某景区明天起免费开放，"[:-1]), ("verdict", "经核实系谣言。")]


def test_attributive_network_words_are_not_rumor_markers() -> None:
    ps = split_passages(
        "",
        "记者找到了网传视频的原始出处，拍摄地点在外省的一处工地。网传的食物相克表流传已久，其中很多说法并不准确，需要逐条辨析。",
    )
    assert kinds(ps, "rumor") == []


# -- title ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("title", "clean"),
    [
        ("#微博辟谣# 领游戏皮肤要追责？假的！", "领游戏皮肤要追责？假的！"),
        (" 捉谣记|厦门将停止收取进出岛车辆通行费？谣言 ", "厦门将停止收取进出岛车辆通行费？谣言"),
        ("青岛将于2月4日封城？｜百度辟谣", "青岛将于2月4日封城？"),
        ("健康真知｜仅通过血液检查可确诊癌症？", "仅通过血液检查可确诊癌症？"),
        ("#微博辟谣##四川云辟谣# 【熊猫斩谣（2023年11月15日）】", "熊猫斩谣（2023年11月15日）"),
        ("#谎称倒卖赈灾羽绒服者已被刑拘#", "谎称倒卖赈灾羽绒服者已被刑拘"),
        ("猪饲料中的砷是砒霜吗？", "猪饲料中的砷是砒霜吗？"),
    ],
)
def test_title_markers_stripped(title: str, clean: str) -> None:
    assert clean_title(title) == clean
    ps = split_passages(title, "")
    assert ps[0] == Passage("title", clean, 0)


@pytest.mark.parametrize(
    ("title", "rumor"),
    [
        ("河北某县一男子编造“猪肉涨价”谣言被处罚", "猪肉涨价"),  # rumor_statement would cut at 编造
        ("“某市一仓库发生爆炸”？官方辟谣", "某市一仓库发生爆炸"),
        ("某部门：“部长给全体退休人员的信”纯属捏造", "部长给全体退休人员的信"),
    ],
)
def test_title_rumor_prefers_the_quoted_claim(title: str, rumor: str) -> None:
    ps = split_passages(title, "")
    assert [p.kind for p in ps] == ["title", "rumor"] and ps[1].text == rumor


def test_title_naming_a_crackdown_states_no_rumor() -> None:
    # rumor_statement cuts "打击整治网络谣言" at 谣言 ("打击整治网络"): that is not a claim.
    assert [p.kind for p in split_passages("某市打击整治网络谣言 公布5起典型案例", "")] == ["title"]


def test_title_repeated_in_text_is_not_a_passage() -> None:
    text = "原标题：吃腐乳会致癌吗？\n吃腐乳会致癌吗？\n腐乳是豆腐经过霉菌发酵制成的，发酵用的毛霉不会产生毒素，正常食用不会致癌。"
    ps = split_passages("吃腐乳会致癌吗？", text)
    check_invariants(ps)
    assert [p.kind for p in ps].count("title") == 1
    assert not any(p.text.startswith(("原标题", "吃腐乳会致癌吗")) for p in ps[1:])


# -- body chunking --------------------------------------------------------------------------------------

def _sentences(n: int) -> list[str]:
    return [f"第{i}句说明了一个与主题有关的细节，长度大约二十几个字。" for i in range(n)]


def test_body_chunks_respect_max_chars_and_sentence_ends() -> None:
    sents = _sentences(30)
    text = "".join(sents[:10]) + "\n" + "".join(sents[10:20]) + "\n" + "".join(sents[20:])
    for max_chars in (60, 120, 300):
        ps = split_passages("某个说法的解释", text, max_chars=max_chars)
        check_invariants(ps, max_chars)
        body = kinds(ps, "body")
        assert body and all(b[-1] in ENDS for b in body)  # cut at sentence ends only
        # Every sentence lands whole in exactly one chunk, in order.
        assert "".join(body).replace(" ", "") == "".join(sents)
        assert all(len(b) > max_chars - 40 for b in body[:-1])  # chunks are filled, not one sentence each


def test_min_chars_drops_short_chunks() -> None:
    # Short paragraphs join the next body text; a chunk that stays short (cut off by a verdict) is dropped.
    text = "好的。\n经核实，该说法不实。\n这句话足够长，应当作为正文段落保留下来，用于匹配。\n嗯。"
    ps = split_passages("标题", text, min_chars=20)
    assert kinds(ps, "body") == ["这句话足够长，应当作为正文段落保留下来，用于匹配。嗯。"]
    assert kinds(ps, "verdict") == ["经核实，该说法不实。"]
    assert kinds(split_passages("标题", text, min_chars=100), "body") == []
    assert kinds(split_passages("标题", text, min_chars=0), "body") == ["好的。", "这句话足够长，应当作为正文段落保留下来，用于匹配。嗯。"]


def test_wechat_broken_lines_are_joined_into_chunks() -> None:
    text = "近期，呼吸道疾病高发\n一份所谓的用药三件套\n在家长群里广泛转发\n医生提醒，抗菌药物属于处方药，需要在医生指导下使用。"
    ps = split_passages("用药三件套可以自行服用？", text)
    body = kinds(ps, "body")
    assert body == ["近期，呼吸道疾病高发 一份所谓的用药三件套 在家长群里广泛转发 医生提醒，抗菌药物属于处方药，需要在医生指导下使用。"]


# -- furniture ------------------------------------------------------------------------------------------------

def test_furniture_is_dropped() -> None:
    text = "\n".join([
        "以下文章来源于某某健康",
        "，作者某某",
        "某某健康",
        "传播健康知识，服务大众生活",
        "作者：某某某",
        "编辑 | 某某",
        "审核：某某 某医院主任医师",
        "来源：某某日报",
        "长期熬夜会扰乱人体的生物钟，影响内分泌和免疫功能，这一点已有不少研究证实。",
        "图片来源：视觉中国",
        "（示意图）",
        "视频截图",
        "熬夜后补觉只能部分缓解疲劳，无法完全抵消睡眠不足带来的损害。",
        "点击下方“阅读原文”查看更多内容",
        "欢迎转发给身边的朋友",
        "长按识别二维码关注我们",
        "（责编：某某、某某）",
        "消息来源：某某网。某某团队辟谣：熬夜后补觉就能补回来？假的！",
        "参考资料：",
        "1. 某某研究组. 睡眠与健康. 2020.",
    ])
    ps = split_passages("熬夜后补觉就能补回来？", text)
    check_invariants(ps)
    body = joined(ps, "body")
    assert "长期熬夜会扰乱人体的生物钟" in body and "熬夜后补觉只能部分缓解疲劳" in body
    everything = "".join(p.text for p in ps)
    for furniture in (
        "文章来源", "作者", "编辑", "审核", "来源", "图片来源", "示意图", "截图", "阅读原文", "转发", "二维码", "责编",
        "参考资料", "某某健康", "服务大众", "假的",
    ):
        assert furniture not in everything, furniture


def test_inline_captions_and_citations_removed() -> None:
    text = "研究人员统计了十年的数据[1]，发现发病率并没有明显变化（图片来源：pixabay）。图源：某某新闻\n另一项研究[2-4]得到了相同的结论，样本量超过一万人。"
    ps = split_passages("标题", text)
    body = joined(ps, "body")
    assert "[1]" not in body and "[2-4]" not in body and "pixabay" not in body and "图源" not in body
    assert "研究人员统计了十年的数据，发现发病率并没有明显变化。" in body


# -- duplicates, determinism ----------------------------------------------------------------------------------

def test_no_passage_text_repeated() -> None:
    para = "这段话在原网页里因为排版问题被重复了两次，它本身是正常的正文内容。"
    text = "\n".join(["网传喝苏打水可以治疗痛风。", para, "网传喝苏打水可以治疗痛风。", para, "经核实，该说法不实。", "经核实，该说法不实。"])
    ps = split_passages("喝苏打水能治痛风？", text, max_chars=40)
    check_invariants(ps, 40)
    assert kinds(ps, "rumor").count("喝苏打水可以治疗痛风。") == 1
    assert kinds(ps, "verdict") == ["经核实，该说法不实。"]
    assert kinds(ps, "body") == [para]


def test_deterministic() -> None:
    records = [json.loads(line) for line in DEMO.read_text("utf-8").splitlines()[:30]]
    first = [split_passages(r["title"], r["text"]) for r in records]
    second = [split_passages(r["title"], r["text"]) for r in records]
    assert first == second


# -- edge cases ------------------------------------------------------------------------------------------------

def test_empty_inputs() -> None:
    assert split_passages("", "") == []
    assert split_passages("   ", " \n\t ") == []
    assert split_passages(None, None) == []  # type: ignore[arg-type]
    assert split_passages("只有标题", "") == [Passage("title", "只有标题", 0)]
    assert split_passages("#微博辟谣#", "收起") == []
    ps = split_passages("", "经核实，网传某小区自来水被污染的消息系谣言，该小区供水水质检测合格。")
    assert ps and ps[0].kind == "verdict" and ps[0].position == 0


def test_title_only_with_rumor_statement() -> None:
    ps = split_passages("竹炭食品能排毒养颜吗？", "")
    assert ps == [Passage("title", "竹炭食品能排毒养颜吗？", 0), Passage("rumor", "竹炭食品能排毒养颜", 1)]


def test_single_over_long_sentence_is_cut_hard_at_max_chars() -> None:
    sentence = "".join(chr(0x4E00 + i) for i in range(2000)) + "。"  # 2,001 characters, no clause break
    ps = split_passages("超长句子", sentence)
    check_invariants(ps)
    body = kinds(ps, "body")
    assert [len(b) for b in body] == [300] * 6 + [201]
    assert "".join(body) == sentence


def test_over_long_sentence_prefers_clause_breaks() -> None:
    sentence = "".join(f"第{i:03d}个分句用逗号和下一个分句隔开，" for i in range(100)) + "结束。"
    ps = split_passages("超长句子", sentence, max_chars=100)
    check_invariants(ps, 100)
    body = kinds(ps, "body")
    assert all(b.endswith(("隔开", "结束。")) for b in body)  # cut after a comma (the trailing comma is dropped)
    assert "，".join(body) == sentence


def test_over_long_rumor_sentence_keeps_one_rumor_passage() -> None:
    ps = split_passages("", "网传" + "某种保健品可以治疗高血压糖尿病和各种慢性病" * 40 + "。")
    check_invariants(ps)
    assert [p.kind for p in ps][:2] == ["rumor", "body"]
    assert sum(p.kind == "rumor" for p in ps) == 1


def test_html_leftovers() -> None:
    text = (
        '<div class="content"><p>流言：<b>吃香蕉</b>能治疗便秘。</p>'
        "<p>真相：&nbsp;没熟透的香蕉含有较多鞣酸，反而可能加重便秘，香蕉&amp;通便没有必然联系。</p>"
        "<script>var share = function(){ return 1; };</script><!-- ad slot --><br/>"
        "<p>想改善便秘，更可靠的办法是多吃富含膳食纤维的全谷物和蔬菜，并且多喝水。</p></div>"
    )
    ps = split_passages("<span>香蕉能通便吗？</span>", text)
    check_invariants(ps)
    assert ps[0].text == "香蕉能通便吗？"
    assert "吃香蕉能治疗便秘。" in kinds(ps, "rumor")
    assert kinds(ps, "verdict") == ["没熟透的香蕉含有较多鞣酸，反而可能加重便秘，香蕉&通便没有必然联系。"]
    everything = "".join(p.text for p in ps)
    assert "<" not in everything and "&nbsp;" not in everything and "var share" not in everything and "ad slot" not in everything


@pytest.mark.parametrize(
    "text",
    [
        "。。。！！！？？？",
        "“" * 500,
        "【】【】【】",
        "\x00\x01\x02 控制字符 \ufffd",
        "a" * 5000,
        "流言：",
        "真相：\n结论：\n要点",
        "#" * 100,
        "<<<>>> &&& &#xZZZ;",
        "网传",
        "\n".join(["短"] * 1000),
    ],
)
def test_odd_input_never_raises(text: str) -> None:
    for max_chars in (1, 5, 300):
        ps = split_passages("奇怪的输入？", text, max_chars=max_chars, min_chars=0)
        check_invariants(ps, max_chars)


# -- article_passages -----------------------------------------------------------------------------------------

def test_article_passages_cleans_page_text_first() -> None:
    raw = "微信扫一扫\n关注该公众号\n网传吃味精会导致脱发，这种说法在网上很流行。\n经核实，该说法没有科学依据。\n分享\n收藏\n点赞\n在看"
    ps = article_passages("吃味精会脱发？", raw)
    check_invariants(ps)
    assert kinds(ps, "verdict") == ["经核实，该说法没有科学依据。"]
    assert "吃味精会导致脱发，这种说法在网上很流行。" in kinds(ps, "rumor")
    assert not any(w in p.text for p in ps for w in ("微信扫一扫", "分享", "点赞"))


# -- every demo record ----------------------------------------------------------------------------------------

def test_demo_records_property() -> None:
    records = [json.loads(line) for line in DEMO.read_text("utf-8").splitlines() if line.strip()]
    assert len(records) > 100
    n_rumor = n_verdict = 0
    for rec in records:
        ps = split_passages(rec["title"], rec["text"])
        check_invariants(ps)
        assert ps[0].kind == "title" and ps[0].position == 0
        for p in ps:
            if p.kind == "body":
                assert len(p.text) >= 20
                # A body chunk ends at a sentence end, at a paragraph end, or is a piece of a sentence
                # longer than max_chars (cut at a clause break or hard at max_chars).
                lines = [re.sub(r"\s*(?:(?:\.{3}|…)?展开|收起)$", "", line.strip()) for line in rec["text"].split("\n")]
                line_ends = [line.rstrip(" ，,、：:")[-8:] for line in lines]
                whole = p.text[-1] in ENDS or any(end and p.text.endswith(end) for end in line_ends)
                assert whole or len(p.text) > 150, p.text
        n_rumor += any(p.kind == "rumor" for p in ps)
        n_verdict += any(p.kind == "verdict" for p in ps)
        small = split_passages(rec["title"], rec["text"], max_chars=80, min_chars=10)
        check_invariants(small, 80)
    assert n_rumor >= 0.5 * len(records)
    assert n_verdict >= 0.25 * len(records)


def test_demo_records_keep_their_words() -> None:
    """Splitting loses little article text: most distinctive 4-grams of a record survive in its passages."""
    records = [json.loads(line) for line in DEMO.read_text("utf-8").splitlines() if line.strip()]
    kept = total = 0
    for rec in records:
        text = re.sub(r"\s+", "", rec["text"])
        grams = {text[i : i + 4] for i in range(0, max(0, len(text) - 4), 7)}
        joined_text = re.sub(r"\s+", "", "".join(p.text for p in split_passages(rec["title"], rec["text"])))
        kept += sum(g in joined_text for g in grams)
        total += len(grams)
    assert kept / total > 0.8


def test_measure_over_a_csv_export(tmp_path: Path) -> None:
    path = tmp_path / "debunks.csv"
    rows = [
        ("吃菠菜能补铁吗？", "流言：多吃菠菜就能补铁。\n真相：菠菜中的铁吸收率很低，靠它补铁并不现实。"),
        ("补钙有讲究", "钙是人体含量最多的矿物质之一，奶制品和豆制品都是很好的钙来源。"),
    ]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["title", "url", "date", "text"])
        for title, text in rows:
            w.writerow([title, "https://example.org/a", "2024-01-01", text])
    m = _measure([str(path)])
    assert m["articles"] == 2 and m["with_rumor"] == 1 and m["with_verdict"] == 1 and m["with_both"] == 1
    assert m["passages_mean"] > 1 and m["articles_per_s"] > 0
