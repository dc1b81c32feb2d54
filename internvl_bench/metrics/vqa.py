"""VQA accuracy (VQAv2, VizWiz, TextVQA, ...) as each of the three scorers in use computes it.

Protocol: a question has (normally) 10 human answers. After normalising both sides, a prediction
scores, for each human in turn, ``min(1, matches among the other humans / 3)``; the question's
accuracy is the mean over humans, so 1, 2, 3 or 4+ matching humans (of 10) give 0.3, 0.6, 0.9, 1.
Reported numbers are means over questions, in percent (overall and per answer type).

The scorers share the matching rule and the normalisers (``processPunctuation`` then
``processDigitArticle``) but apply them differently, so they disagree on real answers:

- ``official``: the VQA challenge tool (GT-Vision-Lab/VQA master, Python 2). Newlines and tabs become
  spaces and both sides are stripped; both sides are normalised only when the humans disagree. With
  unanimous answers the comparison is raw and case-sensitive ("Yes" scores 0 against ten "yes").
  Python 2 regexes match only ASCII digits in ``\\d``; that is reproduced here (its simpler
  lower-casing of a few letters such as "İ" (U+0130) and its older Unicode tables (Georgian capitals
  U+1C90-U+1CBF not lower-cased, U+180E whitespace) are not; none occurs in English answers).
- ``official-py3``: that tool's unmerged Python 3 port (PR #5). The prediction is always fully
  normalised; the human answers are left raw (not even stripped) when unanimous and otherwise get the
  punctuation step only, so they keep case, number words and articles: a human "two" or "the dog" is
  never matched.
- ``m4c``: LLaVA's TextVQA evaluator (``TextVQAAccuracyEvaluator`` with ``EvalAIAnswerProcessor``),
  used by LLaVA-1.5 and InternVL-Chat for local TextVQA scores. Both sides always get
  :func:`evalai_answer`: a word tokeniser first (lower-case, delete "," and "?", "'s" -> " 's"), then
  the normalisers. Because commas are already gone, its digit,digit rule never fires: "1,000-2" keeps
  the hyphen as a space where the VQA tool deletes it.

Quirks of the normalisers that all scorers share, kept on purpose:
- A listed punctuation mark is deleted (everywhere) if it touches a space somewhere in the answer,
  and every mark is deleted if the answer contains digit,digit ("1,000"); otherwise it becomes a space.
- Periods are deleted unless a digit follows ("3.5" stays), but only the first 32: the tools pass
  ``re.UNICODE`` (== 32) as ``re.sub``'s positional ``count``.
- Words are lower-cased, number words zero..ten (and "none") become digits, a/an/the are dropped and
  missing apostrophes are restored ("dont" -> "don't"), word by word.

``vqa_statistic`` recomputes the accuracies on bootstrap resamples of the questions.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from internvl_bench.bootstrap import Statistic, mean_percent
from internvl_bench.errors import unknown_name_error

EVALUATORS = ("official", "official-py3", "m4c")

#: the marks processPunctuation deletes or turns into spaces; "'", ":" and "." are not among them
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                ",", "?", "!")
_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
#: The tools' table of restored apostrophes, less its capitalised keys (Im, Ive, Id've, I'dve: words
#: are lower-cased first, so they never match) and identity entries. "somebody'd" -> "somebodyd",
#: backwards, is theirs.
_CONTRACTIONS = dict(pair.split("=") for pair in """
    aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
    couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
    hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
    howd=how'd howll=how'll hows=how's isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll
    maam=ma'am mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've
    mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't
    ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've
    she'dve=she'd've shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've
    shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've
    somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd
    someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's
    somethingd=something'd somethingd've=something'd've something'dve=something'd've
    somethingll=something'll thats=that's thered=there'd thered've=there'd've there'dve=there'd've
    therere=there're theres=there's theyd=they'd theyd've=they'd've they'dve=they'd've
    theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've
    we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're whats=what's
    whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd
    whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're
    whys=why's wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've
    wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've
    y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've
    youll=you'll youre=you're youve=you've
""".split())
_COMMA_BETWEEN_DIGITS = r"\d,\d"
_PERIOD_NOT_BEFORE_DIGIT = r"\.(?!\d)"
_PERIODS_REMOVED = 32  # re.UNICODE, passed by the tools as re.sub's positional count


def vqa_accuracy(prediction: str, gt_answers: Sequence[str], evaluator: str = "m4c") -> float:
    """One question's VQA accuracy in [0, 1] (leave-one-out over the 10 human answers: 0/.3/.6/.9/1)."""
    prediction, gt_answers = _evaluator(evaluator)(prediction, list(gt_answers))
    if not gt_answers:
        raise ValueError("a question needs at least one ground-truth answer")
    matches = gt_answers.count(prediction)
    # the tools' order of operations, so the floats are bit-identical to theirs
    return sum(min(1.0, (matches - (human == prediction)) / 3) for human in gt_answers) / len(gt_answers)


def vqa_metrics(
    predictions: Sequence[str],
    gt_answers: Sequence[Sequence[str]],
    answer_types: Sequence[str] | None = None,
    evaluator: str = "m4c",
) -> dict[str, float]:
    """``{"accuracy": percent over all questions, "accuracy_<answer type>": percent per type}``.

    Per-type keys appear when ``answer_types`` is given (VQAv2: yes/no, number, other). Every number
    is a mean over questions, as in the tools; they round for printing, this does not.
    """
    _evaluator(evaluator)
    n_questions = len(predictions)
    if len(gt_answers) != n_questions or (answer_types is not None and len(answer_types) != n_questions):
        raise ValueError("predictions, gt_answers and answer_types must have one entry per question")
    if not predictions:
        raise ValueError("no questions to score")
    scores = [vqa_accuracy(p, gts, evaluator) for p, gts in zip(predictions, gt_answers)]
    metrics = {"accuracy": 100 * sum(scores) / len(scores)}
    if answer_types is not None:
        by_type: dict[str, list[float]] = {}
        for answer_type, score in zip(answer_types, scores):
            by_type.setdefault(answer_type, []).append(score)
        metrics |= {f"accuracy_{t}": 100 * sum(s) / len(s) for t, s in by_type.items()}
    return metrics


def vqa_statistic(scores: Sequence[float], answer_types: Sequence[str] | None = None) -> Statistic:
    """The bootstrap statistic of ``vqa_metrics`` from each question's ``vqa_accuracy``: ``accuracy`` and
    each ``accuracy_<type>`` (the mean over the resampled questions of that type; NaN if none) over
    resampled questions."""
    values = np.asarray(scores, dtype=np.float64)
    types = {} if answer_types is None else {t: np.asarray(answer_types) == t for t in dict.fromkeys(answer_types)}

    def statistic(draws: np.ndarray) -> dict[str, np.ndarray]:
        metrics = {"accuracy": mean_percent(values, draws)}
        for answer_type, of_type in types.items():
            drawn = of_type[draws]
            with np.errstate(divide="ignore", invalid="ignore"):
                metrics[f"accuracy_{answer_type}"] = 100 * (values[draws] * drawn).sum(axis=1) / drawn.sum(axis=1)
        return metrics

    return statistic


def evalai_answer(text: str) -> str:
    """The EvalAI answer processor (LLaVA's ``EvalAIAnswerProcessor``) applied to a prediction.

    LLaVA's VQAv2 test-dev and VizWiz test submission converters upload answers in this form, and
    the ``m4c`` scorer compares both sides in it.
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return normalize_answer(text)


def normalize_answer(text: str, ascii_digits: bool = False) -> str:
    """The VQA tool's full normalisation: newlines and tabs to spaces, strip, punctuation, digits/articles.

    Tiny LVLM-eHub scores with it too. ``ascii_digits`` makes ``\\d`` match 0-9 only, as the Python 2
    tool's regexes do (Python 3's also match other scripts' digits).
    """
    flags = re.ASCII if ascii_digits else 0
    return _digits_articles(_punctuation(_whitespace(text), flags))


def _evaluator(name: str) -> Callable[[str, list[str]], tuple[str, list[str]]]:
    """The scorer's normalisation of (prediction, human answers), which is all that differs."""
    if name not in EVALUATORS:
        raise unknown_name_error("VQA evaluator", name, EVALUATORS)
    return _PREPARE[name]


def _official(prediction: str, gt_answers: list[str]) -> tuple[str, list[str]]:
    """Master: both sides cleaned of newlines/tabs; normalised only when the humans disagree."""
    if len({_whitespace(a) for a in gt_answers}) > 1:
        return normalize_answer(prediction, ascii_digits=True), [
            normalize_answer(a, ascii_digits=True) for a in gt_answers
        ]
    return _whitespace(prediction), [_whitespace(a) for a in gt_answers]


def _official_py3(prediction: str, gt_answers: list[str]) -> tuple[str, list[str]]:
    """PR #5: prediction fully normalised; raw humans, punctuation-processed only when they disagree."""
    if len(set(gt_answers)) > 1:
        gt_answers = [_punctuation(a) for a in gt_answers]
    return normalize_answer(prediction), gt_answers


def _m4c(prediction: str, gt_answers: list[str]) -> tuple[str, list[str]]:
    """LLaVA's TextVQAAccuracyEvaluator: the EvalAI processor on both sides, always."""
    return evalai_answer(prediction), [evalai_answer(a) for a in gt_answers]


_PREPARE = {"official": _official, "official-py3": _official_py3, "m4c": _m4c}


def _whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def _punctuation(text: str, flags: int = 0) -> str:
    """processPunctuation: whether a mark is deleted or spaced is decided on the input as a whole."""
    delete_all = re.search(_COMMA_BETWEEN_DIGITS, text, flags) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return re.sub(_PERIOD_NOT_BEFORE_DIGIT, "", out, count=_PERIODS_REMOVED, flags=flags)


def _digits_articles(text: str) -> str:
    """processDigitArticle: lower-case, number words to digits, drop articles, restore apostrophes."""
    words = (_NUMBERS.get(word, word) for word in text.lower().split())
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)
