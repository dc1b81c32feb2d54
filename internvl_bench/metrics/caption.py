"""Caption metrics through pycocoevalcap, as ``COCOEvalCap.evaluate`` runs them (not re-implemented).

InternVL's caption eval (``internvl_chat/eval/caption/evaluate_caption.py``) loads the COCO-format
references and the results and calls ``COCOEvalCap``. This function runs the same pieces on plain
mappings: the PTB tokenizer (Stanford CoreNLP, Java) over references and candidates, then BLEU-1..4,
METEOR, ROUGE-L and CIDEr (and SPICE when asked: it downloads Stanford models at run time, so it is off
by default). BLEU and METEOR are corpus-level values, not means of per-image values; CIDEr's document
frequencies come from the scored set itself, so a single image always scores 0. Values are x100 under
pycocoevalcap's names. Every referenced image needs exactly one candidate, as ``COCOEvalCap`` (which
scores every image of the annotation file) requires.
"""
from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Hashable, Mapping, Sequence

from internvl_bench.errors import BenchError

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def caption_scores(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str],
                   spice: bool = False) -> dict[str, float]:
    """{metric: value x100} of ``candidates`` (one caption per image id) against ``references``."""
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
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # one tokenizer run (one JVM) for both sides: PTB tokenizes line by line, so this equals two runs
    both = {("ref", key): [{"caption": c} for c in refs] for key, refs in references.items()}
    both |= {("cand", key): [{"caption": candidates[key]}] for key in references}
    tokens = PTBTokenizer().tokenize(both)
    gts = {key: tokens[("ref", key)] for key in references}
    res = {key: tokens[("cand", key)] for key in references}
    scorers = [(Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]), (Meteor(), ["METEOR"]), (Rouge(), ["ROUGE_L"]),
               (Cider(), ["CIDEr"])]
    if spice:
        from pycocoevalcap.spice.spice import Spice

        scorers.append((Spice(), ["SPICE"]))
    scores: dict[str, float] = {}
    for scorer, names in scorers:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints BLEU's internals
            value, _ = scorer.compute_score(gts, res)
        for name, number in zip(names, value if isinstance(value, list) else [value]):
            scores[name] = 100.0 * float(number)
    return scores
