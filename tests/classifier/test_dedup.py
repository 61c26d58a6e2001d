"""De-duplication before splitting, and removal of test items that repeat training items."""

from classifier.evaluate import remove_near_duplicates
from classifier.train import dedup

BASE = "网传喝醋可以软化血管，医生提醒：醋的主要成分是醋酸，进入胃肠道后会被中和，根本不可能软化血管，大家不要再信了"


def _rec(i, text, label=1):
    return {"id": str(i), "text": text, "label": label, "dataset": "t"}


def test_exact_and_near_duplicates_removed():
    records = [
        _rec(1, BASE),
        _rec(2, BASE + " http://t.cn/AbC123 @某人"),  # exact after normalization
        _rec(3, "【转】" + BASE.replace("大家不要再信了", "大家别再信了")),  # near duplicate
        _rec(4, BASE.replace("，", ",")),  # punctuation only
        _rec(5, "国家航天局今天宣布，天问一号探测器成功着陆火星乌托邦平原南部预选着陆区，我国首次火星探测任务取得成功", 0),
        _rec(6, "研究人员发现，每天步行三十分钟可以降低心血管疾病风险，相关论文发表在医学期刊上，样本量超过一万人", 0),
    ]
    stats = {}
    kept, removed = dedup(records, stats=stats)
    assert [r["id"] for r in kept] == ["1", "5", "6"]
    assert removed == 3
    assert stats["exact"] == 2 and stats["near"] == 1


def test_distinct_texts_kept():
    texts = [f"第{i}条：{topic}" for i, topic in enumerate(
        ["隔夜菜含有亚硝酸盐，但正常冷藏一天远不到有害剂量",
         "量子波动速读号称一分钟读完一本书，完全没有科学依据",
         "转基因食品经过严格安全评价，目前上市的品种可以放心食用",
         "负离子内衣宣称能治百病，实测负离子浓度微乎其微",
         "微波炉加热食物不会产生致癌物，也不会让食物带辐射"])]
    kept, removed = dedup([_rec(i, t) for i, t in enumerate(texts)])
    assert removed == 0 and len(kept) == len(texts)


def test_conflicting_labels_drop_the_group():
    kept, removed = dedup([_rec(1, BASE, 1), _rec(2, BASE + "！", 0)])
    assert kept == [] and removed == 2
    kept, removed = dedup([_rec(1, BASE, 1), _rec(2, BASE + "！", 0)], drop_conflicts=False)
    assert [r["id"] for r in kept] == ["1"] and removed == 1


def test_remove_near_duplicates_of_training_items():
    train = [_rec(1, BASE)]
    test = [_rec(2, BASE + "，转发"), _rec(3, "今日起，北京地铁多条线路延长运营时间至次日凌晨一点，方便市民夜间出行")]
    kept, removed = remove_near_duplicates(test, train)
    assert removed == 1
    assert [r["id"] for r in kept] == ["3"]
