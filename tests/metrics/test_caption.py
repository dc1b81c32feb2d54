"""Caption metrics: the same numbers as pycocoevalcap's COCOEvalCap on COCO-format files, and the traps."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from internvl_bench.errors import BenchError
import numpy as np

from internvl_bench.metrics.caption import METRICS, caption_scores, caption_statistic, evaluate_captions

CASES = json.loads((Path(__file__).parent / "data" / "caption_cases.json").read_text())


def test_equals_cocoevalcap_on_coco_format_files(tmp_path: Path, monkeypatch) -> None:
    import pycocoevalcap.eval
    from pycocoevalcap.eval import COCOEvalCap
    from pycocotools.coco import COCO

    class NoSpice:  # SPICE downloads Stanford models; COCOEvalCap runs every other scorer as usual
        def method(self):
            return "SPICE"

        def compute_score(self, gts, res):
            return math.nan, [math.nan] * len(gts)

    monkeypatch.setattr(pycocoevalcap.eval, "Spice", NoSpice)
    references = {int(k): v for k, v in CASES["references"].items()}
    candidates = {int(k): v for k, v in CASES["candidates"].items()}
    annotations = {"images": [{"id": k} for k in references], "type": "captions", "info": {}, "licenses": [],
                   "annotations": [{"image_id": k, "id": 100 * k + j, "caption": c}
                                   for k, refs in references.items() for j, c in enumerate(refs)]}
    (tmp_path / "gt.json").write_text(json.dumps(annotations))
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": k, "caption": c} for k, c in candidates.items()]))
    coco = COCO(str(tmp_path / "gt.json"))
    evaluator = COCOEvalCap(coco, coco.loadRes(str(tmp_path / "res.json")))
    evaluator.evaluate()
    evaluation = evaluate_captions(references, candidates)
    ours = evaluation.metrics
    assert set(ours) == set(METRICS)
    for name in METRICS:
        assert ours[name] == pytest.approx(100 * evaluator.eval[name], abs=1e-9), name
    assert ours == pytest.approx(CASES["expected"], abs=1e-6)  # kept values, so a pycocoevalcap change shows
    assert_statistic_gives_the_corpus_scores(evaluation)


def assert_statistic_gives_the_corpus_scores(evaluation) -> None:
    """The bootstrap statistic on every image once, and on every image twice, is the corpus score:
    BLEU from summed statistics, CIDEr / ROUGE-L as per-image means (CIDEr's document frequencies fixed)."""
    statistic = caption_statistic(evaluation)
    n = len(evaluation.bleu_counts)
    expected = {k: v for k, v in evaluation.metrics.items() if k != "METEOR"}  # no interval for METEOR
    for draws, tolerance in ((np.arange(n)[None], 1e-9), (np.tile(np.arange(n), 2)[None], 1e-6)):
        got = {name: float(values[0]) for name, values in statistic(draws).items()}
        assert got == pytest.approx(expected, abs=tolerance)  # twice: BLEU's smoothing constants move it ~1e-9


def test_one_image_has_cider_zero_and_every_image_needs_a_candidate(monkeypatch) -> None:
    single = caption_scores({7: ["a red circle on a white background", "a circle"]}, {7: "a red circle"})
    assert single["CIDEr"] == 0.0 and single["Bleu_1"] > 0
    with pytest.raises(BenchError, match="image 8 has no candidate caption"):
        caption_scores({7: ["a"], 8: ["b"]}, {7: "a"})
    with pytest.raises(BenchError, match="candidate for unknown image 9"):
        caption_scores({7: ["a"]}, {7: "a", 9: "b"})
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(BenchError, match="need Java"):
        caption_scores({7: ["a"]}, {7: "a"})
