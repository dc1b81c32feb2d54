"""Caption metrics through pycocoevalcap, as ``COCOEvalCap.evaluate`` runs them (not re-implemented).

InternVL's caption eval (``internvl_chat/eval/caption/evaluate_caption.py``) loads the COCO-format
references and the results and calls ``COCOEvalCap``. This function runs the same pieces on plain
mappings: the PTB tokenizer (Stanford CoreNLP, Java) over references and candidates, then BLEU-1..4,
METEOR, ROUGE-L and CIDEr (and SPICE when asked: it downloads Stanford models at run time, so it is off
by default). BLEU and METEOR are corpus-level values, not means of per-image values; CIDEr's document
frequencies come from the scored set itself, so a single image always scores 0. Values are x100 under
pycocoevalcap's names. Every referenced image needs exactly one candidate, as ``COCOEvalCap`` (which
scores every image of the annotation file) requires. BLEU runs through pycocoevalcap's ``BleuScorer``
with the 'closest' reference length, which is what ``Bleu(4)`` does, so that each image's n-gram
statistics can be kept.

Intervals (``caption_statistic``, over resampled images; no scorer runs again, no Java): CIDEr and
ROUGE-L are pycocoevalcap's own per-image scores averaged over the resample -- CIDEr's document
frequencies are those of the full set, held fixed (recomputing them per resample would need a new
IDF table each time and is not what the point estimate of a fixed test set measures); BLEU-1..4 come
from the resampled images' summed n-gram statistics, exactly as corpus BLEU is formed. METEOR (the Java
scorer's aggregate, not a mean of segment scores) and SPICE get no interval.
"""
from __future__ import annotations

import shutil
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from internvl_bench.bootstrap import Statistic, mean_percent, resampled_sums
from internvl_bench.errors import BenchError

BLEU_N = 4
BLEU = tuple(f"Bleu_{k}" for k in range(1, BLEU_N + 1))
METRICS = (*BLEU, "METEOR", "ROUGE_L", "CIDEr")
#: the metrics pycocoevalcap reports as the mean of its per-image scores
PER_IMAGE_MEANS = ("ROUGE_L", "CIDEr")


@dataclass(frozen=True)
class CaptionEvaluation:
    """pycocoevalcap's corpus scores, and per image (in ``references`` order) what their bootstrap needs."""

    metrics: dict[str, float]
    #: CIDEr (document frequencies of the full set) and ROUGE-L of each image, pycocoevalcap's units
    per_image: dict[str, np.ndarray]
    #: BLEU's sufficient statistics of each image [n, 2 + 2 * 4]: candidate length, closest reference
    #: length, n-gram guesses (n = 1..4), clipped n-gram matches (n = 1..4)
    bleu_counts: np.ndarray


def caption_scores(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str],
                   spice: bool = False) -> dict[str, float]:
    """{metric: value x100} of ``candidates`` (one caption per image id) against ``references``."""
    return evaluate_captions(references, candidates, spice).metrics


def evaluate_captions(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str],
                      spice: bool = False) -> CaptionEvaluation:
    """``caption_scores`` plus the per-image values ``caption_statistic`` resamples."""
    _check_inputs(references, candidates)
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = _tokenized(references, candidates)
    bleu, bleu_counts = _bleu(gts, res)
    scores = dict(zip(BLEU, bleu))
    per_image = {}
    scorers = [(Meteor(), "METEOR"), (Rouge(), "ROUGE_L"), (Cider(), "CIDEr")]
    if spice:
        from pycocoevalcap.spice.spice import Spice

        scorers.append((Spice(), "SPICE"))
    for scorer, name in scorers:
        scores[name], each = scorer.compute_score(gts, res)
        if name in PER_IMAGE_MEANS:
            per_image[name] = np.asarray(each, dtype=np.float64)
    return CaptionEvaluation({name: 100.0 * float(value) for name, value in scores.items()}, per_image, bleu_counts)


def _check_inputs(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]) -> None:
    """One candidate per referenced image, and Java for the scorers that need it."""
    if not references:
        raise BenchError("no captions to score")
    missing = [key for key in references if key not in candidates]
    extra = [key for key in candidates if key not in references]
    if missing or extra:
        what = f"image {missing[0]!r} has no candidate caption" if missing else f"candidate for unknown image {extra[0]!r}"
        raise BenchError(f"captions: {what} ({len(missing)} missing, {len(extra)} unknown); score one caption per "
                         "referenced image")
    if shutil.which("java") is None:
        raise BenchError("caption metrics need Java for pycocoevalcap's PTB tokenizer and METEOR; install Java 17 "
                         "(apt-get install openjdk-17-jre-headless)")


def _tokenized(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]) -> tuple[dict, dict]:
    """(references, candidates) by image through the PTB tokenizer, in ``references`` order."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # one tokenizer run (one JVM) for both sides: PTB tokenizes line by line, so this equals two runs
    both = {("ref", key): [{"caption": c} for c in refs] for key, refs in references.items()}
    both |= {("cand", key): [{"caption": candidates[key]}] for key in references}
    tokens = PTBTokenizer().tokenize(both)
    return {key: tokens[("ref", key)] for key in references}, {key: tokens[("cand", key)] for key in references}


def _bleu(gts: dict, res: dict) -> tuple[list[float], np.ndarray]:
    """BLEU-1..4 as pycocoevalcap's ``Bleu(4).compute_score`` ('closest' reference length), and each
    image's sufficient statistics (its ``BleuScorer`` entries), which sum to the corpus ones."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=BLEU_N)
    for key in gts:
        scorer += (res[key][0], gts[key])
    value, _ = scorer.compute_score(option="closest")
    counts = [[c["testlen"], min((abs(length - c["testlen"]), length) for length in c["reflen"])[1],
               *c["guess"], *c["correct"]] for c in scorer.ctest]
    return value, np.asarray(counts, dtype=np.float64)


def caption_statistic(evaluation: CaptionEvaluation) -> Statistic:
    """The bootstrap statistic over resampled images: CIDEr and ROUGE-L as means of the per-image scores
    (CIDEr's document frequencies stay those of the full set), BLEU-1..4 from the resampled images'
    summed statistics. METEOR (an aggregate of the Java scorer) and SPICE get no interval."""

    def statistic(draws: np.ndarray) -> dict[str, np.ndarray]:
        metrics = _bleu_from_counts(resampled_sums(evaluation.bleu_counts, draws))
        return metrics | {name: mean_percent(each, draws) for name, each in evaluation.per_image.items()}

    return statistic


def _bleu_from_counts(totals: np.ndarray) -> dict[str, np.ndarray]:
    """x100 BLEU-1..4 of summed statistics [B, 2 + 2 * 4], with ``BleuScorer.compute_score``'s
    smoothing constants and brevity penalty."""
    tiny, small = 1e-15, 1e-9
    testlen, reflen = totals[:, 0], totals[:, 1]
    guess, correct = totals[:, 2:2 + BLEU_N], totals[:, 2 + BLEU_N:]
    ratio = (testlen + tiny) / (reflen + small)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    product = np.ones(len(totals))
    metrics = {}
    for k, name in enumerate(BLEU):
        product = product * (correct[:, k] + tiny) / (guess[:, k] + small)
        metrics[name] = 100.0 * product ** (1.0 / (k + 1)) * penalty
    return metrics
