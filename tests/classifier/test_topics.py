"""The topic model: seed rules (weak labels), training on a small inline sample, persistence, training data.

Everything here is self-contained: the sample sentences below were written for this test (no shared data).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from classifier.labels import TOPICS
from classifier.starter import META_FILE, MODEL_FILE, TRUSTED_FILE
from classifier.topics import (
    CLAIM_MIN_SCORE,
    KIND,
    SeedRules,
    TopicConfig,
    TopicModel,
    UntrustedModelError,
    build_topic_records,
    clean_title,
    load_seeds,
    seed_documents,
    seed_label,
    train_topics,
)

SAMPLE: dict[str, list[str]] = {
    "health_wellness": [
        "每天快走半小时有助于控制体重",
        "熬夜会让皮肤变差，尽量早点睡觉",
        "减肥不能只靠节食，还要配合运动",
        "午睡二十分钟能让下午精神更好",
        "多吃蔬菜水果，保持均衡饮食和营养",
        "喝温水养生，早上空腹喝一杯最好",
        "长期久坐伤腰，记得起身活动筋骨",
        "补钙要多晒太阳，多喝牛奶",
        "睡前泡脚能改善睡眠质量吗",
        "跑步锻炼前要热身，避免运动损伤",
    ],
    "food_safety": [
        "隔夜菜含有亚硝酸盐，放久了不能吃",
        "超市的西瓜被注射了色素和甜味剂",
        "小龙虾用洗虾粉泡过，残留有毒物质",
        "蔬菜农药残留超标，要多洗几遍",
        "地沟油流入餐馆后厨，食品安全堪忧",
        "塑料大米混进了市场，怎么煮都煮不烂",
        "发霉的花生含有黄曲霉毒素",
        "食品添加剂和防腐剂吃多了会中毒",
        "奶茶店使用过期原料被查处",
        "转基因食品到底安不安全",
    ],
    "disease_medicine": [
        "新冠病毒感染者出现发热咳嗽症状",
        "接种流感疫苗可以降低重症风险",
        "医院医生提醒高血压患者按时吃药",
        "抗生素不是消炎药，不能随便服用",
        "糖尿病患者要定期监测血糖",
        "肺癌早期筛查可以提高治愈率",
        "某地出现多例传染病病例，疾控中心介入调查",
        "幽门螺杆菌会引起胃炎和胃溃疡",
        "艾滋病病毒不会通过蚊子传播",
        "手术后患者需要住院观察三天",
    ],
    "science_technology": [
        "5G基站的电磁辐射强度远低于国家标准",
        "火箭成功发射，卫星进入预定轨道",
        "科学家利用望远镜发现一颗新的小行星",
        "手机边充电边玩，电池会爆炸吗",
        "人工智能机器人可以自动写新闻稿",
        "国产芯片研发取得新进展",
        "月球背面的探测器传回高清照片",
        "量子通信实验创造新的距离纪录",
        "新能源电动汽车的电池寿命有多长",
        "恐龙化石研究揭示了羽毛的进化",
    ],
    "environment_disasters": [
        "四川发生5.8级地震，暂无人员伤亡",
        "台风登陆沿海地区，带来强降雨",
        "连续暴雨导致河水上涨，部分村庄被洪水淹没",
        "山体滑坡阻断公路，救援人员正在抢修",
        "化工厂爆炸事故造成空气污染",
        "北方大部地区出现沙尘暴天气",
        "森林火灾过火面积持续扩大",
        "雾霾天气持续，空气质量重度污染",
        "高温预警发布，气温将突破四十度",
        "河流被工厂排放的污水污染，鱼类大量死亡",
    ],
    "superstition_pseudoscience": [
        "风水大师说家里摆放貔貅可以招财转运",
        "开过光的护身符能辟邪保平安",
        "算命先生说今年犯太岁要破财",
        "量子波动速读让孩子一小时读完十本书",
        "喝能量水可以净化血液包治百病",
        "佩戴负离子手环能够改善体质",
        "气功大师隔空发功治好了怪病",
        "转发这条锦鲤就会带来好运，不转会倒霉",
        "碱性水能改变酸性体质",
        "本命年一定要穿红色才能避灾",
    ],
    "elderly_scams": [
        "老人参加免费体检讲座，被骗买下高价保健品",
        "以房养老骗局盯上独居老人的房产",
        "骗子冒充社保人员，骗取老年人养老金",
        "免费领鸡蛋的养生讲座，专门忽悠大爷大妈",
        "所谓养老项目投资高回报，其实是非法集资骗老人钱",
        "收藏品回购骗局让老人损失积蓄",
        "保健品推销员天天上门陪聊，骗走老人十万元",
        "假冒专家在社区开健康讲座卖神药给老年人",
        "养老公寓预售高息返利，多位老人被骗",
        "冒充医保局来电，诱骗老人转账",
    ],
    "other": [
        "明星夫妇官宣离婚的消息系谣言",
        "高考成绩将于下周公布",
        "某市地铁新线路年底开通",
        "足球队在比赛中获得冠军",
        "交警通报一起违章处罚案件",
        "银行将调整存款利率",
        "某公司宣布裁员的消息不实",
        "学校推迟开学时间的通知是假的",
        "新电影上映首日票房破亿",
        "快递春节期间停运的说法不准确",
    ],
}

UNSEEN: list[tuple[str, str]] = [
    ("社区讲座骗老人买保健品", "elderly_scams"),
    ("大师开光的转运珠能招财", "superstition_pseudoscience"),
    ("隔夜菜放久了有亚硝酸盐", "food_safety"),
    ("地震之后又下暴雨，村庄受灾", "environment_disasters"),
    ("新冠疫苗接种后发热咳嗽怎么办", "disease_medicine"),
    ("卫星和火箭发射成功", "science_technology"),
    ("每天运动减肥，早点睡觉", "health_wellness"),
    ("明星离婚的消息不实", "other"),
]

SMALL = TopicConfig(word_hash_bits=14, char_hash_bits=14, C=10.0)


def _texts_labels() -> tuple[list[str], list[str]]:
    texts = [t for ts in SAMPLE.values() for t in ts]
    labels = [c for c, ts in SAMPLE.items() for _ in ts]
    return texts, labels


@pytest.fixture(scope="module")
def model() -> TopicModel:
    texts, labels = _texts_labels()
    return TopicModel(SMALL).fit(texts, labels)


# --------------------------------------------------------------------------- the model
def test_sample_covers_every_topic() -> None:
    assert set(SAMPLE) == set(TOPICS)
    assert all(len(v) == 10 for v in SAMPLE.values())


def test_predicts_obvious_unseen_texts(model: TopicModel) -> None:
    preds = model.predict([t for t, _ in UNSEEN])
    got = [c for c, _ in preds]
    assert got == [c for _, c in UNSEEN]
    assert all(0.0 < p <= 1.0 for _, p in preds)


def test_predict_proba_shape_and_classes(model: TopicModel) -> None:
    proba = model.predict_proba([t for t, _ in UNSEEN])
    assert proba.shape == (len(UNSEEN), len(TOPICS))
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert sorted(model.classes) == sorted(TOPICS)
    best = [model.classes[j] for j in proba.argmax(axis=1)]
    assert best == [c for c, _ in model.predict([t for t, _ in UNSEEN])]
    assert model.predict([]) == []
    assert model.predict_proba([]).shape == (0, len(TOPICS))


def test_fit_validates_topics() -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        TopicModel(SMALL).fit(["一", "二"], ["rumor", "other"])
    with pytest.raises(ValueError, match="two topics"):
        TopicModel(SMALL).fit(["一", "二"], ["other", "other"])
    with pytest.raises(RuntimeError):
        TopicModel(SMALL).predict(["未训练"])


def test_save_load_roundtrip(model: TopicModel, tmp_path: Path) -> None:
    d = model.save(tmp_path / "topics", meta={"note": "test"})
    assert {p.name for p in d.iterdir()} == {MODEL_FILE, TRUSTED_FILE, META_FILE}
    meta = json.loads((d / META_FILE).read_text("utf-8"))
    assert meta["kind"] == KIND == "topics"
    assert meta["classes"] == model.classes
    assert meta["counts"] == {c: 10 for c in TOPICS}
    assert meta["version"] and meta["created"] and meta["note"] == "test"
    assert meta["config"]["word_hash_bits"] == 14
    loaded = TopicModel.load(d)
    texts = [t for t, _ in UNSEEN]
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-6)
    assert loaded.predict(texts) == model.predict(texts)
    assert loaded.model_version == model.model_version
    assert (d / MODEL_FILE).stat().st_size < 15_000_000


def test_coefficients_are_float32(model: TopicModel) -> None:
    clf = model.pipeline.named_steps["clf"]
    assert clf.coef_.dtype == np.float32


def test_load_refuses_untrusted_types(model: TopicModel, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    d = model.save(tmp_path / "m")
    # A listed type outside the scientific stack is refused even though the list names it.
    (d / TRUSTED_FILE).write_text(json.dumps(["builtins.eval"]), "utf-8")
    with pytest.raises(UntrustedModelError, match="allow-list"):
        TopicModel.load(d)
    (d / TRUSTED_FILE).write_text("not json", "utf-8")
    with pytest.raises(UntrustedModelError, match="JSON"):
        TopicModel.load(d)

    # A model file holding a function the trusted list does not name is refused, with a matching hash.
    d2 = model.save(tmp_path / "m2")
    evil = Pipeline([("f", FunctionTransformer(func=os.getcwd)), ("clf", model.pipeline.named_steps["clf"])])
    sio.dump(evil, d2 / MODEL_FILE)
    from classifier.base import sha256_file

    meta = json.loads((d2 / META_FILE).read_text("utf-8"))
    meta["model_sha256"] = sha256_file(d2 / MODEL_FILE)
    (d2 / META_FILE).write_text(json.dumps(meta), "utf-8")
    with pytest.raises(UntrustedModelError, match="unexpected types"):
        TopicModel.load(d2)


def test_load_refuses_a_changed_model_file_and_other_kinds(model: TopicModel, tmp_path: Path) -> None:
    d = model.save(tmp_path / "m")
    with open(d / MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(UntrustedModelError, match="SHA-256"):
        TopicModel.load(d)
    d2 = model.save(tmp_path / "m2")
    meta = json.loads((d2 / META_FILE).read_text("utf-8"))
    meta["kind"] = "linear"
    (d2 / META_FILE).write_text(json.dumps(meta), "utf-8")
    with pytest.raises(ValueError, match="kind"):
        TopicModel.load(d2)
    (d2 / TRUSTED_FILE).unlink()
    with pytest.raises(FileNotFoundError):
        TopicModel.load(d2)


# --------------------------------------------------------------------------- seed rules
RULES_TEXT = """
# a test seed file
[elderly_scams]
老人+骗*2 以房养老*3
[food_safety]
农药残留*2 隔夜菜*2 食品
[disease_medicine]
药*2 癌*2
[science_technology]
ai*2 手机
[other]
警方*2
[ignore]
农药厂
[priors]
某食品网 = food_safety
"""


def test_seed_rules_conjunction_weights_and_priority() -> None:
    rules = SeedRules.parse(RULES_TEXT)
    assert list(rules.topics) == ["elderly_scams", "food_safety", "disease_medicine", "science_technology", "other"]
    assert rules.scores("骗子专盯老人") == {"elderly_scams": 2.0}
    assert rules.scores("老人买菜") == {}  # a conjunction needs every part
    assert rules.label("以房养老") == "elderly_scams"
    # Equal scores: the topic listed first wins (food_safety before disease_medicine).
    assert rules.scores("隔夜菜致癌") == {"food_safety": 2.0, "disease_medicine": 2.0}
    assert rules.label("隔夜菜致癌") == "food_safety"
    # Below the threshold nothing is labelled; a weight-1 keyword alone never reaches the title threshold.
    assert rules.label("食品") is None
    assert rules.label("食品", min_score=1) == "food_safety"
    assert rules.label("警方通报隔夜菜致癌", min_score=CLAIM_MIN_SCORE) is None


def test_seed_rules_longest_match_ignore_and_ascii_words() -> None:
    rules = SeedRules.parse(RULES_TEXT)
    # "药" inside "农药残留" is not counted again; a separate "药" is.
    assert rules.scores("蔬菜农药残留") == {"food_safety": 2.0}
    assert rules.scores("蔬菜农药残留，吃药") == {"food_safety": 2.0, "disease_medicine": 2.0}
    # [ignore] phrases only block the keywords inside them.
    assert rules.scores("农药厂附近") == {}
    # Latin keywords match whole words only, after normalization (full width, upper case).
    assert rules.scores("He said hello") == {}
    assert rules.scores("ＡＩ换脸视频") == {"science_technology": 2.0}
    assert [e.text for e in rules.matches("老人被骗")["elderly_scams"]] == ["老人+骗*2"]


def test_seed_rules_priors() -> None:
    rules = SeedRules.parse(RULES_TEXT)
    assert rules.priors["某食品网"] == "food_safety"
    assert rules.priors["中国食品辟谣网_新华网"] == "food_safety"  # from classifier.labels.DATASET_TOPICS
    assert rules.label("一篇讲营养的文章", prior="某食品网") == "food_safety"
    assert rules.label("一篇讲营养的文章", prior="某食品网", fallback=False) is None
    assert rules.label("一篇讲营养的文章", prior="别的网站") is None
    # The prior adds 0.5: it breaks a tie in its favour but does not beat a stronger keyword.
    assert rules.scores("吃药", prior="某食品网") == {"disease_medicine": 2.0, "food_safety": 0.5}
    assert rules.label("吃药", prior="某食品网") == "disease_medicine"


def test_seed_file_errors() -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        SeedRules.parse("[gossip]\n明星\n")
    with pytest.raises(ValueError, match="before any"):
        SeedRules.parse("明星\n")
    with pytest.raises(ValueError, match="weight"):
        SeedRules.parse("[other]\n明星*x\n")
    with pytest.raises(ValueError, match="outlet"):
        SeedRules.parse("[priors]\n某网 = gossip\n")


def test_packaged_seed_file() -> None:
    rules = load_seeds()
    assert set(rules.topics) == set(TOPICS)
    assert list(rules.topics)[0] == "elderly_scams" and list(rules.topics)[-1] == "other"
    assert seed_label("警惕以房养老骗局") == "elderly_scams"
    assert seed_label("风水大师开光转运") == "superstition_pseudoscience"
    assert seed_label("量子波动速读是骗局吗") == "superstition_pseudoscience"
    assert seed_label("隔夜菜会致癌吗") == "food_safety"
    assert seed_label("熬夜减肥靠谱吗") == "health_wellness"
    assert seed_label("新冠疫苗的副作用") == "disease_medicine"
    assert seed_label("四川地震的传言") == "environment_disasters"
    assert seed_label("5G基站辐射大吗") == "science_technology"
    assert seed_label("警方通报高考造谣者") == "other"
    assert seed_label("今天天气晴朗，心情不错呀") != "elderly_scams"
    assert seed_label("一段无关的话") is None
    assert seed_label("网络环境要清朗") is None  # [ignore]: not about the environment
    assert seed_label("一篇文章", prior="科信食品与健康信息交流中心") == "food_safety"
    docs = seed_documents(rules)
    assert {d["label"] for d in docs} == set(TOPICS)
    assert all(d["text"] and d["source"] == "seed_keyword" for d in docs)


def test_clean_title() -> None:
    assert clean_title("#微博辟谣# 网传某地地震？谣言！") == "网传某地地震？谣言！"
    assert clean_title(" 捉谣记|吃西瓜会中毒？假的！ ") == "吃西瓜会中毒？假的！"
    assert clean_title("鸡蛋是人造的？｜百度辟谣") == "鸡蛋是人造的？"


# --------------------------------------------------------------------------- training data and training
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def _tiny_data(root: Path) -> tuple[Path, Path]:
    """Claims and debunks folders in the shared data's formats, made of the SAMPLE sentences."""
    claims, debunks = root / "claims", root / "debunks"
    claims.mkdir()
    debunks.mkdir()
    domain = {"disease_medicine": "医药健康", "science_technology": "科技", "environment_disasters": "灾难事故",
              "other": "社会生活", "health_wellness": "医药健康", "food_safety": "社会生活"}
    train, val = [], []
    for code, texts in SAMPLE.items():
        if code not in domain:
            continue
        for i, t in enumerate(texts):
            row = {"content": f"{t}，网友热议第{i}条", "label": i % 2, "category": domain[code]}
            (val if i % 4 == 0 else train).append(row)
    _write_jsonl(claims / "weibo21_train.jsonl", train)
    _write_jsonl(claims / "weibo21_val.jsonl", val)
    _write_jsonl(claims / "checked_covid.jsonl", [{"id": "c1", "text": "新冠病毒疫情期间不要聚集", "label": "real"}])
    _write_jsonl(claims / "ced_weibo.jsonl", [
        {"id": "e1", "text": "老人参加讲座被骗买保健品，警惕以房养老骗局", "label": 1},
        {"id": "e2", "text": "今天天气晴朗，大家出门走走", "label": 0},
    ])
    rows = [(t, f"正文：{t}。") for code in ("superstition_pseudoscience", "elderly_scams") for t in SAMPLE[code]]
    with open(debunks / "微博辟谣.csv", "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["title", "url", "date", "text"])
        for i, (title, text) in enumerate(rows):
            w.writerow([f"#微博辟谣# {title}", f"https://example.org/{i}", "2024-01-01", text])
        w.writerow(["#微博辟谣#【#今日辟谣#（2024年1月1日）】", "https://example.org/r", "", "汇总"])
        w.writerow(["一段无关的标题文字", "https://example.org/x", "", "没有关键词"])
    with open(debunks / "中国食品辟谣网_新华网.csv", "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["title", "url", "text", "date"])
        w.writerow(["一篇没有关键词的文章", "https://example.org/f", "内容", ""])
    return claims, debunks


def test_build_topic_records(tmp_path: Path) -> None:
    claims, debunks = _tiny_data(tmp_path)
    stats: dict = {}
    recs = build_topic_records(claims, debunks, stats=stats)
    by_text = {r["text"]: r for r in recs}
    # Weibo21: the domain through WEIBO21_TOPICS, refined by seeds to a topic Weibo21 lacks.
    r = by_text["新冠病毒感染者出现发热咳嗽症状，网友热议第0条"]
    assert (r["label"], r["source"], r["domain_topic"]) == ("disease_medicine", "domain", "disease_medicine")
    r = next(r for t, r in by_text.items() if t.startswith("地沟油流入餐馆后厨"))
    assert (r["label"], r["source"], r["domain_topic"]) == ("food_safety", "seed", "other")
    # CHECKED is all disease_medicine; CED only where a seed rule reaches the claims' threshold.
    assert by_text["新冠病毒疫情期间不要聚集"]["label"] == "disease_medicine"
    assert by_text["老人参加讲座被骗买保健品，警惕以房养老骗局"]["label"] == "elderly_scams"
    assert "今天天气晴朗，大家出门走走" not in by_text
    # Debunks: outlet markers dropped, roundups skipped, the outlet prior as the fallback.
    deb = [r for r in recs if r["dataset"].startswith("debunk:")]
    assert all("微博辟谣" not in r["text"] for r in deb)
    assert stats["roundups_skipped"] == 1
    assert stats["unlabeled"].get("微博辟谣", 0) >= 1
    assert not any(r["text"].startswith("一段无关的标题文字") for r in deb)
    food = [r for r in deb if r["dataset"] == "debunk:中国食品辟谣网_新华网"]
    assert [(r["label"], r["source"]) for r in food] == [("food_safety", "prior")]
    assert {r["label"] for r in deb} >= {"superstition_pseudoscience", "elderly_scams"}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_train_topics_end_to_end(tmp_path: Path) -> None:
    claims, debunks = _tiny_data(tmp_path)
    out = tmp_path / "model"
    cfg = TopicConfig(word_hash_bits=12, char_hash_bits=12, max_iter=40)
    report = train_topics(claims, debunks, out, seed=0, progress=False, config=cfg, log=None)
    assert {p.name for p in out.iterdir()} >= {MODEL_FILE, TRUSTED_FILE, META_FILE, "MODEL_CARD.md", "TRAINING_LOG.txt"}
    a = report["metrics"]["a_weibo21_val_domains"]
    b = report["metrics"]["b_random_holdout"]
    assert a["n"] > 0 and 0.0 <= a["accuracy_domain"] <= 1.0
    assert 0.0 <= b["macro_f1"] <= 1.0 and set(b["per_topic"]) <= set(TOPICS)
    card = (out / "MODEL_CARD.md").read_text("utf-8")
    assert "research" in card and "weak labels" in card and "copyright" in card
    loaded = TopicModel.load(out)
    assert loaded.meta["kind"] == "topics"
    assert loaded.predict(["以房养老骗局"])[0][0] in TOPICS
