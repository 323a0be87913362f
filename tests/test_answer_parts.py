"""The answerer's parts on hand-worked inputs: unit completion, kind
agreement, span tidying, and the models as stored (JSON and numpy, no pickle)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from retriever.answer import (
    ANSWER_FEATURES,
    ANSWERER_JSON,
    CANDIDATE_FEATURES,
    AnswererModels,
    LogisticModel,
    _sentence_around,
    _share_found,
    _tidy,
    complete_date,
    complete_unit,
    kind_agrees,
)
from retriever.reader import READER_JSON, READER_NPZ


@pytest.mark.parametrize("text, span, unit, kind, want", [
    # The unit the question asks for joins a bare figure: 516万 -> 516万标准箱.
    ("集装箱吞吐量516万标准箱，增长12%。", "516万", "标准箱", "count", "516万标准箱"),
    ("接待参访1310万余人次。", "1310万", "人次", "count", "1310万余人次"),
    ("补贴标准提高到5000元/年。", "5000", "元", "money", "5000元"),
    # Already there, or another word follows: unchanged.
    ("配备大学生乡村医生4777人。", "4777人", "人", "count", "4777人"),
    ("完成加装617台。", "617", "", "count", "617台"),
    ("共有84名运动员。", "84", "人", "count", "84"),
    # Not a figure, or not a figure question: unchanged.
    ("由李建芳负责。", "李建芳", "", "person", "李建芳"),
    ("时限缩短到3个工作日。", "3", "", "duration", "3个工作日"),
])
def test_complete_unit(text, span, unit, kind, want):
    start = text.index(span)
    end = complete_unit(text, start, start + len(span), unit, kind)
    assert text[start:end] == want


def test_complete_date_takes_the_bracketed_western_year():
    text = "近清在天正16年（1588年）把家督让予嫡子康直。"
    start = text.index("天正")
    assert text[start:complete_date(text, start, start + 5, "date")] == "天正16年（1588年）"
    assert complete_date(text, start, start + 5, "count") == start + 5
    plain = "该银行创立于1957年。"
    assert complete_date(plain, 6, 11, "date") == 11


@pytest.mark.parametrize("kind, span, want", [
    ("count", "617台", 1.0), ("count", "完成加装", 0.0), ("count", "三千人", 1.0),
    ("money", "5000元", 1.0), ("money", "5000人", 0.0),
    ("percent", "99.89%", 1.0), ("percent", "两成", 1.0), ("percent", "99.89", 0.0),
    ("date", "11月12日", 1.0), ("date", "2021年", 1.0), ("date", "召开会议", 0.0),
    ("duration", "3个工作日", 1.0), ("duration", "3个", 0.0),
    ("person", "李建芳", 1.0), ("place", "崇岭村", 0.0), ("place", "桂林市", 1.0),
    ("title", "“全国文明村”", 1.0), ("description", "任何文字", 0.5),
])
def test_kind_agrees(kind, span, want):
    assert kind_agrees(kind, span) == want


def test_tidy_and_sentence():
    text = "他说：“之前看大家养蜜蜂。”现在我们也能养了！"
    s, e = _tidy(text, 3, 14)  # “之前看大家养蜜蜂。” with its closing quote
    assert text[s:e] == "“之前看大家养蜜蜂。”"
    s, e = _tidy(text, 3, 12)  # an opening quote without its close is dropped
    assert text[s:e] == "之前看大家养蜜蜂"
    assert _sentence_around(text, 15, 17) == (14, 23)
    assert _share_found(("广茂",), "广三铁路全长49公里") == 0.0
    assert _share_found(("广三",), "广三铁路全长49公里") == 1.0
    assert _share_found((), "anything") == 1.0


def test_logistic_model_by_hand():
    m = LogisticModel({"features": ["a", "b"], "mean": [1.0, 0.0], "scale": [2.0, 1.0],
                       "weights": [2.0, -1.0], "bias": 0.5})
    # z = 2 * (3 - 1) / 2 - 1 * 1 + 0.5 = 1.5
    assert m.predict({"a": 3.0, "b": 1.0}) == pytest.approx(1 / (1 + np.exp(-1.5)))
    assert m.predict({}) == pytest.approx(1 / (1 + np.exp(-(2 * -0.5 + 0.5))))


def test_shipped_models_are_plain_data():
    """The answerer's models are JSON with the features the code computes; the
    reader's weights a numpy archive with no object arrays (loads with
    allow_pickle=False); both name how they were made."""
    spec = json.loads(ANSWERER_JSON.read_text(encoding="utf-8"))
    assert spec["candidate"]["features"] == list(CANDIDATE_FEATURES)
    assert spec["answerable"]["features"] == list(ANSWER_FEATURES)
    assert spec["command"] == "python -m eval.train_answerer"
    assert "CMRC 2018 trial" in spec["trained_on"]["data"]
    models = AnswererModels.load()
    assert 0 < models.min_confidence < 1 and 0 < models.short_confidence < 1
    with zipfile.ZipFile(READER_NPZ) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(READER_NPZ, allow_pickle=False) as data:
        assert data["head.w"].shape == (384, 2)
        assert all(data[k].dtype != object for k in data.files)
    info = json.loads(READER_JSON.read_text(encoding="utf-8"))
    assert info["command"].startswith("python -m eval.train_reader")
    assert info["first_tuned_layer"] == 6
