"""Tiny LVLM-eHub answer checks against hand-computed cases (checked against its VQAEval.evaluate)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_bench.metrics.tiny_lvlm import tiny_lvlm_correct

CASE_FILE = Path(__file__).parent / "data" / "tiny_lvlm_cases.json"
CASES = json.loads(CASE_FILE.read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hand_computed_cases(case: dict) -> None:
    assert tiny_lvlm_correct(case["answer"], case["gt_answers"]) is case["expected"], case["why"]


def test_any_sequence_of_ground_truths_and_no_mutation() -> None:
    truths = ["Blue.", "RED"]
    assert tiny_lvlm_correct("It is red", truths)
    assert tiny_lvlm_correct("It is red", tuple(truths))
    assert truths == ["Blue.", "RED"]  # the original normalises the caller's list in place
