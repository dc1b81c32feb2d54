"""VQA accuracy per evaluator against hand-computed cases (checked against the official tools)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_bench.errors import BenchError
from internvl_bench.metrics.vqa import EVALUATORS, evalai_answer, vqa_accuracy, vqa_metrics

CASES = json.loads((Path(__file__).parent / "data" / "vqa_cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("evaluator", EVALUATORS)
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hand_computed_cases(case: dict, evaluator: str) -> None:
    accuracy = vqa_accuracy(case["prediction"], case["gt_answers"], evaluator)
    assert accuracy == pytest.approx(case["expected"][evaluator]), case["why"]


def test_cases_tell_the_evaluators_apart() -> None:
    disagreeing = [c["name"] for c in CASES if len(set(c["expected"].values())) > 1]
    assert len(disagreeing) >= 25
    for first, second in [("official", "official-py3"), ("official", "m4c"), ("official-py3", "m4c")]:
        assert any(c["expected"][first] != c["expected"][second] for c in CASES), (first, second)


def test_default_evaluator_is_m4c() -> None:
    assert vqa_accuracy("Yes", ["yes"] * 10) == vqa_accuracy("Yes", ["yes"] * 10, "m4c") == 1.0
    assert vqa_accuracy("Yes", ["yes"] * 10, "official") == 0.0


# q1 is the only question the evaluators score differently: "Yes" against ten raw "yes".
QUESTIONS = [
    ("Yes", ["yes"] * 10, "yes/no"),  # official 0, m4c 1
    ("no", ["no"] + ["yes"] * 9, "yes/no"),  # one human: 0.3
    ("two", ["2"] * 2 + ["3"] * 8, "number"),  # two -> 2, two humans: 0.6
    ("4", ["5"] * 10, "number"),  # 0
    ("red", ["red"] * 3 + ["blue"] * 7, "other"),  # three humans: 0.9
]


@pytest.mark.parametrize(
    ("evaluator", "expected"),
    [
        # (1 + .3 + .6 + 0 + .9) / 5 = 56%; yes/no (1 + .3) / 2; number (.6 + 0) / 2; other .9
        ("m4c", {"accuracy": 56.0, "accuracy_yes/no": 65.0, "accuracy_number": 30.0, "accuracy_other": 90.0}),
        (
            "official",
            {"accuracy": 36.0, "accuracy_yes/no": 15.0, "accuracy_number": 30.0, "accuracy_other": 90.0},
        ),
    ],
)
def test_metrics_average_over_questions_overall_and_per_answer_type(evaluator: str, expected: dict) -> None:
    predictions, gt_answers, answer_types = zip(*QUESTIONS)
    metrics = vqa_metrics(predictions, gt_answers, answer_types, evaluator=evaluator)
    assert metrics == pytest.approx(expected)
    assert vqa_metrics(predictions, gt_answers, evaluator=evaluator) == pytest.approx(
        {"accuracy": expected["accuracy"]}
    )


def test_metrics_are_not_rounded() -> None:
    # (0.3 + 1 + 0) / 3 = 43.333...%, which the tools print as 43.33
    metrics = vqa_metrics(["cat", "cat", "cat"], [["cat"] + ["dog"] * 9, ["cat"] * 10, ["dog"] * 10])
    assert metrics["accuracy"] == pytest.approx(100 * (0.3 + 1.0) / 3)
    assert metrics["accuracy"] != round(metrics["accuracy"], 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "yes"),
        ("The answer is: A DOG!", "answer is: dog"),  # ':' is not in the punctuation list
        ("1,000,000", "1000000"),
        ("3.14.", "3.14"),  # a period before a digit stays
        ("dont", "don't"),
        ("it's John's\n\tbook", "it 's john 's book"),
        ("red,white", "redwhite"),  # commas are deleted, not spaced
        ("what?", "what"),
        ("  two  ", "2"),
        ("t-shirt", "t shirt"),
        ("left - right", "left right"),  # ' -' present: '-' deleted
        ("none of the above", "0 of above"),
        ('"hello"', "hello"),
        ("U.S.A.", "usa"),
        ("Ten oclock", "10 o'clock"),
        ("somebody'd", "somebodyd"),  # the contraction table's backwards entry
        ("yes" + "." * 33, "yes."),  # only 32 periods are removed
        ("", ""),
    ],
)
def test_evalai_answer(text: str, expected: str) -> None:
    assert evalai_answer(text) == expected


def test_unknown_evaluator_lists_the_valid_names() -> None:
    with pytest.raises(BenchError) as error:
        vqa_accuracy("yes", ["yes"] * 10, evaluator="offical")
    message = str(error.value)
    assert "\n" not in message and "offical" in message
    assert all(name in message for name in EVALUATORS)
    with pytest.raises(BenchError):
        vqa_metrics(["yes"], [["yes"] * 10], evaluator="vqa")


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        vqa_metrics([], [])
    with pytest.raises(ValueError):
        vqa_metrics(["yes", "no"], [["yes"] * 10])
    with pytest.raises(ValueError):
        vqa_metrics(["yes"], [["yes"] * 10], answer_types=["yes/no", "other"])
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])
