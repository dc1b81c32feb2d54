"""MME answer parsing and scores against hand-computed cases (tests/metrics/data/mme_cases.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_bench.errors import BenchError
from internvl_bench.metrics.mme import COGNITION, PERCEPTION, MMEItem, mme_scores, parse_mme

DATA = json.loads((Path(__file__).parent / "data" / "mme_cases.json").read_text())


def items_of(rows: list[list[str]]) -> list[MMEItem]:
    return [
        MMEItem(subtask=subtask, image=image, question=f"question {index}?", label=label, response=response)
        for index, (subtask, image, label, response) in enumerate(rows)
    ]


@pytest.mark.parametrize("case", DATA["parse"], ids=[repr(c["response"]) for c in DATA["parse"]])
def test_parse(case: dict) -> None:
    assert parse_mme(case["response"]) == case["expected"]


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_scores(case: dict) -> None:
    scores = mme_scores(items_of(case["items"]))
    for key, expected in case["expected"].items():
        assert scores[key] == pytest.approx(expected), key
    for key in case.get("absent", []):
        assert key not in scores


@pytest.mark.parametrize("case", DATA["errors"], ids=[c["name"] for c in DATA["errors"]])
def test_bad_input(case: dict) -> None:
    with pytest.raises(BenchError, match=case["match"]):
        mme_scores(items_of(case["items"]))


def test_every_subtask_reports_score_acc_and_acc_plus() -> None:
    case = next(c for c in DATA["cases"] if c["name"] == "all fourteen subtasks")
    scores = mme_scores(items_of(case["items"]))
    expected_keys = {f"{s}{suffix}" for s in PERCEPTION + COGNITION for suffix in ("", "_acc", "_acc_plus")}
    assert set(scores) == expected_keys | {"perception", "cognition"}
    for subtask in PERCEPTION + COGNITION:
        assert scores[subtask] == scores[f"{subtask}_acc"] + scores[f"{subtask}_acc_plus"]
    assert scores["perception"] == sum(scores[s] for s in PERCEPTION)
    assert scores["cognition"] == sum(scores[s] for s in COGNITION)


def test_order_of_subtasks_in_the_input_does_not_matter() -> None:
    case = next(c for c in DATA["cases"] if c["name"] == "interleaved subtasks of both groups")
    items = items_of(case["items"])
    grouped = sorted(items, key=lambda item: item.subtask)  # stable: keeps each subtask's order
    assert mme_scores(grouped) == mme_scores(items)
