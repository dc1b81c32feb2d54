"""GQA answer conversion and accuracy against hand-computed cases (tests/metrics/data/gqa_cases.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_bench.errors import BenchError
from internvl_bench.metrics.gqa import gqa_accuracy, gqa_prediction

DATA = json.loads((Path(__file__).parent / "data" / "gqa_cases.json").read_text())


@pytest.mark.parametrize("case", DATA["convert"], ids=[repr(c["text"]) for c in DATA["convert"]])
def test_convert(case: dict) -> None:
    assert gqa_prediction(case["text"]) == case["expected"]
    assert gqa_prediction(gqa_prediction(case["text"])) == case["expected"]  # idempotent


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_accuracy(case: dict) -> None:
    assert gqa_accuracy(case["predictions"], case["questions"]) == pytest.approx(case["expected"])


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_converted_predictions_score_the_same(case: dict) -> None:
    converted = {qid: gqa_prediction(text) for qid, text in case["predictions"].items()}
    assert gqa_accuracy(converted, case["questions"]) == gqa_accuracy(case["predictions"], case["questions"])


@pytest.mark.parametrize("case", DATA["errors"], ids=[c["name"] for c in DATA["errors"]])
def test_bad_input(case: dict) -> None:
    with pytest.raises(BenchError, match=case["match"]):
        gqa_accuracy(case["predictions"], case["questions"])
