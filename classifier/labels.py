"""The starter taxonomy: two labels, and how each training set's labels map onto them.

Internally a label is a code ("rumor" / "credible"); models see it as 1 / 0
(1 = rumor, the positive class whose probability is the score).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RUMOR",
    "CREDIBLE",
    "LABELS",
    "DISPLAY_NAMES",
    "DATASET_LABELS",
    "dataset_family",
    "to_binary",
    "code_of",
    "display_name",
]

RUMOR = "rumor"
CREDIBLE = "credible"

# Index = the binary class the models use: 0 = credible, 1 = rumor.
LABELS: tuple[str, str] = (CREDIBLE, RUMOR)

DISPLAY_NAMES: dict[str, str] = {
    RUMOR: "谣言",
    CREDIBLE: "可信",
}

# Raw label of each dataset -> label code.
DATASET_LABELS: dict[str, dict[Any, str]] = {
    # Weibo21 (Nan et al., CIKM 2021): label 1 = fake, 0 = real.
    "weibo21": {1: RUMOR, 0: CREDIBLE},
    # CED (Song et al. 2018): label 1 = rumor (reported to Weibo's misinformation desk), 0 = non-rumor.
    "ced": {1: RUMOR, 0: CREDIBLE},
    # CHECKED (Yang et al. 2021): label "fake" / "real".
    "checked": {"fake": RUMOR, "real": CREDIBLE},
}


def dataset_family(dataset: str) -> str:
    """``weibo21_train`` -> ``weibo21``; ``ced_weibo`` -> ``ced``; ``checked_covid`` -> ``checked``."""
    name = dataset.lower()
    for family in DATASET_LABELS:
        if name == family or name.startswith(family + "_") or name.startswith(family):
            return family
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_LABELS)}")


def code_of(dataset: str, raw: Any) -> str:
    """Label code of a raw dataset label; raises ValueError for an unknown label."""
    mapping = DATASET_LABELS[dataset_family(dataset)]
    key = raw.strip().lower() if isinstance(raw, str) else raw
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    if isinstance(key, bool):
        key = int(key)
    try:
        return mapping[key]
    except (KeyError, TypeError):
        raise ValueError(f"{dataset}: unknown label {raw!r}; expected one of {list(mapping)}") from None


def to_binary(dataset: str, raw: Any) -> int:
    """1 for rumor, 0 for credible."""
    return LABELS.index(code_of(dataset, raw))


def display_name(code: str) -> str:
    """Chinese display name of a label code (谣言 / 可信)."""
    try:
        return DISPLAY_NAMES[code]
    except KeyError:
        raise ValueError(f"unknown label code {code!r}; expected one of {list(DISPLAY_NAMES)}") from None


# Verdict taxonomy for debunks and editors' decisions, aligned with the platforms' own labels.
# Spiders map each site's native verdict onto these codes (see crawlers/spiders/*.py).
VERDICT_RUMOR = "rumor"
VERDICT_PSEUDOSCIENCE = "pseudoscience"
VERDICT_MISLEADING = "misleading"
VERDICT_UNPROVEN = "unproven"
VERDICT_CREDIBLE = CREDIBLE

VERDICTS: dict[str, str] = {
    VERDICT_RUMOR: "谣言",
    VERDICT_PSEUDOSCIENCE: "伪科学",
    VERDICT_MISLEADING: "误导/有失实",
    VERDICT_UNPROVEN: "尚无定论",
    VERDICT_CREDIBLE: "可信",
}

# Topics: what a claim is about. Editors' desks and the statistics page group by these.
TOPIC_HEALTH = "health_wellness"
TOPIC_FOOD = "food_safety"
TOPIC_MEDICINE = "disease_medicine"
TOPIC_SCIENCE = "science_technology"
TOPIC_DISASTER = "environment_disasters"
TOPIC_PSEUDOSCIENCE = "superstition_pseudoscience"
TOPIC_ELDERLY_SCAMS = "elderly_scams"
TOPIC_OTHER = "other"

TOPICS: dict[str, str] = {
    TOPIC_HEALTH: "健康养生",
    TOPIC_FOOD: "食品安全",
    TOPIC_MEDICINE: "疾病医药",
    TOPIC_SCIENCE: "科学技术",
    TOPIC_DISASTER: "环境与灾害",
    TOPIC_PSEUDOSCIENCE: "封建迷信与伪科学",
    TOPIC_ELDERLY_SCAMS: "涉老诈骗",
    TOPIC_OTHER: "其他",
}

# Weibo21's nine domains (and its 无法确定) -> topic. Only 科技, 医药健康 and 灾难事故 carry a
# science topic; the rest are news domains outside the science desk.
WEIBO21_TOPICS: dict[str, str] = {
    "科技": TOPIC_SCIENCE,
    "医药健康": TOPIC_MEDICINE,
    "灾难事故": TOPIC_DISASTER,
    "社会生活": TOPIC_OTHER,
    "政治": TOPIC_OTHER,
    "军事": TOPIC_OTHER,
    "教育考试": TOPIC_OTHER,
    "财经商业": TOPIC_OTHER,
    "文体娱乐": TOPIC_OTHER,
    "无法确定": TOPIC_OTHER,
}
# Whole datasets or outlets whose items share one topic.
DATASET_TOPICS: dict[str, str] = {
    "checked": TOPIC_MEDICINE,  # CHECKED: COVID-19 posts
    "中国食品辟谣网_新华网": TOPIC_FOOD,
}


def topic_name(code: str) -> str:
    """Chinese display name of a topic code."""
    try:
        return TOPICS[code]
    except KeyError:
        raise ValueError(f"unknown topic {code!r}; expected one of {list(TOPICS)}") from None
