"""The bootstrap: percentile intervals, seeding, strata, NaN handling, and each task's statistic.

Every task statistic is checked to give the point estimate on the identity "resample" (each unit once),
so a statistic that recomputes a metric differently from its scorer cannot pass (captions' statistic:
tests/metrics/test_caption.py, beside the one pycocoevalcap run it needs).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from internvl_bench import bootstrap
from internvl_bench.bootstrap import bootstrap_intervals, mean_percent, percentile_interval, resampled_sums
from internvl_bench.metrics.classification import classification_metrics, classification_statistic, target_ranks
from internvl_bench.metrics.gqa import gqa_accuracy, gqa_marks, gqa_statistic
from internvl_bench.metrics.mme import MMEItem, mme_marks, mme_scores, mme_statistic, scores_from_marks
from internvl_bench.metrics.pope import pope_marks, pope_metrics, pope_statistic
from internvl_bench.metrics.retrieval import QueryRanks, recall_statistic, recalls_from_ranks
from internvl_bench.metrics.vqa import vqa_accuracy, vqa_metrics, vqa_statistic
from tasks.tiny_lvlm import CATEGORIES, category_scores, category_statistic


def identity(*sizes: int) -> list[np.ndarray]:
    """One 'resample' per stratum that draws every unit once, in order."""
    return [np.arange(size)[None, :] for size in sizes]


def at_identity(statistic, *sizes: int) -> dict[str, float]:
    return {metric: float(values[0]) for metric, values in statistic(*identity(*sizes)).items()}


def assert_same_metrics(got: dict[str, float], expected: dict[str, float], tolerance: float = 1e-9) -> None:
    assert set(got) == set(expected)
    for metric, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[metric]), metric
        else:
            assert got[metric] == pytest.approx(value, abs=tolerance), metric


def accuracy_of(marks: np.ndarray):
    return lambda draws: {"acc": mean_percent(marks, draws)}


# -- the function ----------------------------------------------------------------------------------
def test_interval_of_a_proportion_has_the_normal_width_and_contains_the_estimate() -> None:
    marks = np.random.default_rng(1).random(2000) < 0.3
    low, high = bootstrap_intervals(len(marks), accuracy_of(marks), resamples=2000)["acc"]
    point = 100 * marks.mean()
    assert low < point < high
    expected_half_width = 1.96 * 100 * math.sqrt(point / 100 * (1 - point / 100) / len(marks))  # about 2.0
    assert (high - low) / 2 == pytest.approx(expected_half_width, rel=0.15)


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    marks = np.random.default_rng(2).random(300) < 0.5
    first = bootstrap_intervals(300, accuracy_of(marks), resamples=200, seed=7)
    assert bootstrap_intervals(300, accuracy_of(marks), resamples=200, seed=7) == first
    assert bootstrap_intervals(300, accuracy_of(marks), resamples=200, seed=8) != first
    assert bootstrap_intervals(300, accuracy_of(marks), resamples=0) == {}


def test_batches_cover_every_resample_once(monkeypatch) -> None:
    values = np.random.default_rng(3).random(37)
    whole = bootstrap_intervals(37, accuracy_of(values), resamples=20, seed=4)
    rows = []

    def counting(draws: np.ndarray) -> dict[str, np.ndarray]:
        rows.append(draws.shape)
        return accuracy_of(values)(draws)

    monkeypatch.setattr(bootstrap, "MAX_BATCH_RESAMPLES", 7)
    assert bootstrap_intervals(37, counting, resamples=20, seed=4) == whole
    assert rows == [(7, 37), (7, 37), (6, 37)]


def test_strata_are_drawn_within_their_own_range() -> None:
    seen = []

    def statistic(small: np.ndarray, large: np.ndarray) -> dict[str, np.ndarray]:
        seen.append((small.shape, int(small.max()), large.shape, int(large.max())))
        return {"x": small.sum(axis=1) + large.sum(axis=1)}

    bootstrap_intervals([3, 50], statistic, resamples=100)
    ((small_shape, small_max, large_shape, large_max),) = seen
    assert small_shape == (100, 3) and large_shape == (100, 50) and small_max == 2 and 40 < large_max <= 49


def test_undefined_resamples_are_left_out_and_all_undefined_is_nan() -> None:
    positives = np.zeros(40, dtype=bool)
    positives[0] = True  # one positive in 40: about a third of the resamples draw none

    def precision(draws: np.ndarray) -> dict[str, np.ndarray]:
        drawn = positives[draws].sum(axis=1)
        with np.errstate(invalid="ignore"):
            return {"share": np.where(drawn > 0, drawn / drawn, math.nan), "never": np.full(len(draws), math.nan)}

    intervals = bootstrap_intervals(40, precision, resamples=300)
    assert intervals["share"] == (1.0, 1.0)
    assert all(math.isnan(bound) for bound in intervals["never"])


def test_percentile_method_and_bad_arguments() -> None:
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([1.0, math.nan, math.inf, 3.0]), level=0.5) == pytest.approx((1.5, 2.5))
    assert bootstrap_intervals([], accuracy_of(np.ones(1)), resamples=10) == {}  # nothing scored, nothing to resample
    for bad in ({"n_units": 0}, {"n_units": 5, "resamples": -1}, {"n_units": 5, "level": 1.0}):
        with pytest.raises(ValueError):
            bootstrap_intervals(statistic=accuracy_of(np.ones(5)), **bad)


def test_resampled_sums_count_repeated_units() -> None:
    values = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])
    assert resampled_sums(values, np.array([[0, 0, 2], [1, 1, 1]])).tolist() == [[6.0, 60.0], [6.0, 60.0]]


def test_one_thousand_resamples_of_five_thousand_units_take_well_under_a_second() -> None:
    import time

    marks = np.random.default_rng(5).random(5000) < 0.5
    started = time.perf_counter()
    bootstrap_intervals(5000, accuracy_of(marks), resamples=1000)
    assert time.perf_counter() - started < 1.0


# -- the tasks' statistics -------------------------------------------------------------------------
def test_retrieval_statistic_gives_the_recalls_and_resamples_each_direction_on_its_own() -> None:
    generator = torch.Generator().manual_seed(0)
    ranks = QueryRanks(i2t=torch.zeros(30, dtype=torch.long), t2i=torch.randint(0, 11, (90,), generator=generator))
    assert_same_metrics(at_identity(recall_statistic(ranks), *ranks.units), recalls_from_ranks(ranks))
    intervals = bootstrap_intervals(ranks.units, recall_statistic(ranks), resamples=300)
    assert intervals["i2t_R@1"] == (100.0, 100.0)  # every image query is a hit, whatever the caption draws
    assert intervals["t2i_R@5"][0] < recalls_from_ranks(ranks)["t2i_R@5"] < intervals["t2i_R@5"][1]
    assert intervals["mean_R"][0] < recalls_from_ranks(ranks)["mean_R"] < intervals["mean_R"][1]


@pytest.mark.parametrize("n_classes", [3, 12])
def test_classification_statistic_gives_the_metrics(n_classes: int) -> None:
    generator = torch.Generator().manual_seed(n_classes)
    targets = torch.randint(0, n_classes, (200,), generator=generator)
    logits = torch.randint(0, 4, (200, n_classes), generator=generator).float()  # coarse: ties
    logits[targets == 0, 0] += 2  # class 0 easy: per-class recall differs from accuracy
    statistic = classification_statistic(target_ranks(logits, targets), targets, n_classes)
    assert_same_metrics(at_identity(statistic, 200), classification_metrics(logits, targets))
    intervals = bootstrap_intervals(200, statistic, resamples=300)
    metrics = classification_metrics(logits, targets)
    for name in ("acc1", "mean_per_class_recall"):
        assert intervals[name][0] < metrics[name] < intervals[name][1]
    assert math.isnan(intervals["acc5"][0]) == (n_classes < 5)


def mme_items(subtask: str, pattern: list[tuple[bool, bool]]) -> list[MMEItem]:
    """Two items per image; (first right, second right) per image; labels alternate."""
    items = []
    for image, rights in enumerate(pattern):
        for question, right in enumerate(rights):
            label = ("Yes", "No")[question]
            wrong = ("No", "Yes")[question]
            items.append(MMEItem(subtask, f"{image}.jpg", f"q{question}", label, label if right else wrong))
    return items


def test_mme_statistic_gives_the_scores_and_the_totals() -> None:
    rng = np.random.default_rng(0)
    items = [item for subtask in ("existence", "OCR", "code_reasoning")
             for item in mme_items(subtask, [tuple(rng.random(2) < 0.7) for _ in range(15)])]
    marks = mme_marks(items)
    sizes, statistic = mme_statistic(marks)
    assert sizes == [15, 15, 15]
    assert scores_from_marks(marks) == mme_scores(items)
    assert_same_metrics(at_identity(statistic, *sizes), mme_scores(items))
    intervals = bootstrap_intervals(sizes, statistic, resamples=300)
    for metric in ("perception", "cognition", "OCR", "existence_acc_plus"):
        assert intervals[metric][0] < mme_scores(items)[metric] < intervals[metric][1], metric


def test_mme_resamples_images_so_that_their_two_answers_stay_together() -> None:
    # every image has exactly one right answer: acc is 50 on any resample of images, and acc+ 0; a
    # bootstrap over single questions would move acc
    split = mme_items("count", [(True, False), (False, True)] * 10)
    # images right or wrong as a whole: acc+ equals acc on any resample of images
    whole = mme_items("color", [(True, True), (False, False), (True, True)] * 7)
    sizes, statistic = mme_statistic(mme_marks(split + whole))
    intervals = bootstrap_intervals(sizes, statistic, resamples=500)
    assert intervals["count_acc"] == (50.0, 50.0) and intervals["count_acc_plus"] == (0.0, 0.0)
    assert intervals["color_acc"] == intervals["color_acc_plus"] and intervals["color_acc"][0] < intervals["color_acc"][1]
    draws = [np.random.default_rng(1).integers(0, size, (50, size)) for size in sizes]
    values = statistic(*draws)
    assert np.array_equal(values["perception"], values["count"] + values["color"])


def test_pope_statistic_gives_the_metrics_and_nan_where_undefined() -> None:
    rng = np.random.default_rng(0)
    labels = ["yes" if x else "no" for x in rng.random(120) < 0.5]
    responses = ["Yes, there is." if x else "No." for x in rng.random(120) < 0.6]
    statistic = pope_statistic(*pope_marks(responses, labels))
    assert_same_metrics(at_identity(statistic, 120), pope_metrics(responses, labels))
    intervals = bootstrap_intervals(120, statistic, resamples=300)
    for metric, value in pope_metrics(responses, labels).items():
        assert intervals[metric][0] < value < intervals[metric][1], metric
    never_yes = pope_statistic(*pope_marks(["No"] * 4, ["yes", "no", "no", "yes"]))
    assert math.isnan(at_identity(never_yes, 4)["precision"]) and math.isnan(at_identity(never_yes, 4)["f1"])


def test_vqa_statistic_gives_the_accuracies_per_answer_type() -> None:
    rng = np.random.default_rng(0)
    humans = [["two"] * 4 + ["2"] * 3 + ["three"] * 3, ["yes"] * 10, ["red"] * 2 + ["blue"] * 8]
    questions = [humans[i] for i in rng.integers(0, 3, 90)]
    predictions = [str(rng.choice(["2", "yes", "no", "blue", "red"])) for _ in range(90)]
    types = [("number", "yes/no", "other")[humans.index(q)] for q in questions]
    scores = [vqa_accuracy(p, q) for p, q in zip(predictions, questions)]
    statistic = vqa_statistic(scores, types)
    assert_same_metrics(at_identity(statistic, 90), vqa_metrics(predictions, questions, types))
    assert set(at_identity(vqa_statistic(scores), 90)) == {"accuracy"}


def test_gqa_and_tiny_lvlm_statistics_give_the_metrics() -> None:
    questions = {str(i): {"answer": "yes" if i % 3 else "no", "isBalanced": i % 5 != 0} for i in range(60)}
    predictions = {str(i): "Yes." if i % 2 else "no" for i in range(60)}
    marks = gqa_marks(predictions, questions)
    assert_same_metrics(at_identity(gqa_statistic(marks), len(marks)), gqa_accuracy(predictions, questions))

    rng = np.random.default_rng(0)
    scored = [(category, bool(rng.random() < 0.6)) for category in CATEGORIES for _ in range(25)]
    scored += [("Visual_Reasoning", True)] * 5
    sizes, statistic = category_statistic(scored)
    assert sizes == [30, 25, 25, 25, 25]
    assert_same_metrics(at_identity(statistic, *sizes), category_scores(scored))
    draws = [rng.integers(0, size, (20, size)) for size in sizes]
    values = statistic(*draws)
    assert np.allclose(values["overall"], sum(values[m] for m in CATEGORIES.values()))
    partial = [(c, ok) for c, ok in scored if c != "Object_Hallucination"]
    sizes, statistic = category_statistic(partial)
    assert "overall" not in at_identity(statistic, *sizes) and "overall" not in category_scores(partial)
