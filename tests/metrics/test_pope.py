"""POPE answer parsing and metrics against hand-computed cases (tests/metrics/data/pope_cases.json)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from internvl_bench.errors import BenchError
from internvl_bench.metrics.pope import parse_pope, pope_metrics

DATA = json.loads((Path(__file__).parent / "data" / "pope_cases.json").read_text())


@pytest.mark.parametrize("case", DATA["parse"], ids=[repr(c["text"]) for c in DATA["parse"]])
def test_parse(case: dict) -> None:
    assert parse_pope(case["text"]) == case["expected"]


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_metrics(case: dict) -> None:
    metrics = pope_metrics(case["responses"], case["labels"])
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "yes_ratio"}
    for key, expected in case["expected"].items():
        if expected is None:
            assert math.isnan(metrics[key]), key
        else:
            assert metrics[key] == pytest.approx(expected), key


@pytest.mark.parametrize("case", DATA["errors"], ids=[c["name"] for c in DATA["errors"]])
def test_bad_input(case: dict) -> None:
    with pytest.raises(BenchError, match=case["match"]):
        pope_metrics(case["responses"], case["labels"])


def test_parse_cases_through_metrics() -> None:
    """Every parse case scored at once: the yes ratio counts exactly the answers read as yes."""
    texts = [c["text"] for c in DATA["parse"]]
    read_yes = sum(c["expected"] == "yes" for c in DATA["parse"])
    metrics = pope_metrics(texts, ["yes"] * len(texts))
    assert metrics["yes_ratio"] == pytest.approx(100 * read_yes / len(texts))
    assert metrics["recall"] == pytest.approx(metrics["yes_ratio"])
