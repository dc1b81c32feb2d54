"""POPE: internvl_bench.metrics.pope against LLaVA's llava/eval/eval_pope.py (and InternVL's copy).

Inputs: pope_cases.json (parse probes, metric cases, error cases) and seeded random cases: yes/no labels
and responses drawn from traps of the first-sentence / comma / single-space / case-sensitive rules, or
random word strings. Function level: ``eval_pope`` per case. Script level: random trials of three
categories (adversarial / popular / random) through the script's ``__main__``, as LLaVA runs it.
"""
from __future__ import annotations

import json
import math
import random
import shutil

from common import Tally, case_file, dump, load, report, run_side, workdir

from internvl_bench.errors import BenchError
from internvl_bench.metrics.pope import parse_pope, pope_marks, pope_metrics

SEED = 20240912
N_RANDOM_CASES = 400
N_TRIALS = 60
CATEGORIES = ("adversarial", "popular", "random")
TRAPS = ["Yes", "No", "no", "yes", "NO", "Not", "not", "Not at all", "There is not a cat", "No. There is a dog.",
         "Yes. There is no dog.", "Yes, there is", "No, there is not", "No, there is a cat", "No,there is",
         "Yes,no", "yes no", "No\tthere is", "No\nthere is", "There is no\tdog", "No!", "no.", "No.", "Nope",
         "I don't know", "cannot tell", "none", "None", "", " ", ".", ",", "No .", " No", "No ", "not.", "Not sure",
         "Yes there is not", "Yes.\nNo", "There is a cat, not a dog", "There isn't", "nO", "NOT", "Ｎo",
         "no\u00a0cat", "yes, no", "Yes...no", "a.b no", "there is\tno cat", "no,", ",no", "no!", "(no)"]
WORDS = ["Yes", "No", "no", "not", "Not", "NO", "there", "is", "a", "cat", "dog", "yes", "nothing"]
SEPARATORS = [" ", " ", " ", ", ", ",", ". ", ".", "\t", "\n", "  "]


def random_response(rng: random.Random) -> str:
    if rng.random() < 0.55:
        return rng.choice(TRAPS)
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
    return "".join(w + rng.choice(SEPARATORS) for w in words[:-1]) + words[-1] + rng.choice(["", ".", "!", " "])


def random_case(rng: random.Random, n_max: int = 40) -> dict:
    n = rng.randint(1, n_max)
    yes_share = rng.choice([0.0, 0.5, 1.0, rng.random()])
    return {"responses": [random_response(rng) for _ in range(n)],
            "labels": ["yes" if rng.random() < yes_share else "no" for _ in range(n)]}


def write_trial(folder, categories: dict) -> None:
    (folder / "coco").mkdir(parents=True)
    questions, answers, qid = [], [], 0
    for category, case in categories.items():
        lines = []
        for response, label in zip(case["responses"], case["labels"]):
            questions.append({"question_id": qid, "category": category, "text": "Is there a cat?"})
            answers.append({"question_id": qid, "text": response})
            lines.append(json.dumps({"question_id": qid, "label": label}) + "\n")
            qid += 1
        (folder / "coco" / f"coco_pope_{category}.json").write_text("".join(lines))
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (folder / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))  # LLaVA: jsonl
    dump(folder / "answers.json", answers)  # InternVL's copy reads one JSON list


def counts(case) -> dict:
    yes, labelled = pope_marks(case["responses"], case["labels"])
    return {"TP": int((yes & labelled).sum()), "FP": int((yes & ~labelled).sum()),
            "TN": int((~yes & ~labelled).sum()), "FN": int((~yes & labelled).sum())}


def compare(tally: Tally, case: dict, theirs: dict, context) -> None:
    ours = pope_metrics(case["responses"], case["labels"])
    for key, value in counts(case).items():
        tally.same("counts", value, theirs.get(key), context)
    if "error" in theirs:
        # the script stops at the first zero denominator; ours gives NaN there (0 for F1 when P = R = 0)
        line = theirs["line"]
        expected_nan = {"precision = float(TP) / float(TP + FP)": "precision",
                        "recall = float(TP) / float(TP + FN)": "recall"}.get(line)
        if expected_nan:
            tally.same("zero-division -> NaN", True, math.isnan(ours[expected_nan]), context)
        elif line.startswith("f1 = 2"):
            tally.same("zero-division (P = R = 0) -> f1 0", 0.0, ours["f1"], context)
        else:
            tally.mismatches.append({"metric": "crash", "official": line, "case": context})
        tally.compared["official ZeroDivisionError"] = tally.compared.get("official ZeroDivisionError", 0) + 1
        return
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        tally.number(key, ours[key], None if key not in theirs else 100 * theirs[key], context)


def main() -> None:
    rng = random.Random(SEED)
    data = case_file("pope_cases.json")
    work = workdir("pope")
    shutil.rmtree(work / "trials", ignore_errors=True)
    parse_texts = [c["text"] for c in data["parse"]]
    cases = [{"responses": parse_texts, "labels": ["yes"] * len(parse_texts)}]  # parse probes, read back per answer
    cases += [{"responses": c["responses"], "labels": c["labels"]} for c in data["cases"]]
    cases += [random_case(rng) for _ in range(N_RANDOM_CASES)]
    errors = [c for c in data["errors"]]
    dump(work / "cases.json", cases + [{"responses": c["responses"], "labels": c["labels"]} for c in errors])
    trials = {}
    for n in range(N_TRIALS):
        trials[f"trial_{n:03d}"] = {c: random_case(rng, 120) for c in CATEGORIES}
        write_trial(work / "trials" / f"trial_{n:03d}", trials[f"trial_{n:03d}"])
    run_side("side_pope.py", work)
    official = load(work / "official.json")

    tallies = []
    for name, theirs in official.items():
        tally = Tally("pope", {"llava": "LLaVA llava/eval/eval_pope.py", "internvl": "InternVL internvl_chat/eval/pope/eval_pope.py"}[name])
        for n, case in enumerate(cases):
            result = theirs["cases"][n]
            for text, parsed in zip(case["responses"], result["parsed"]):
                tally.same("parse", parse_pope(text), parsed, text)
            compare(tally, case, result, f"case {n}")
        for n, case in enumerate(errors):
            result = theirs["cases"][len(cases) + n]
            try:
                pope_metrics(case["responses"], case["labels"])
                ours = "scored"
            except BenchError as error:
                ours = f"BenchError: {error}"
            theirs_outcome = {k: v for k, v in result.items() if k != "parsed"}
            tally.notes.append(f"error case {case['name']!r}: ours {ours!r}; script {theirs_outcome}")
        for trial, categories in trials.items():
            result = theirs["trials"][trial]
            blocks = {b["category"]: b for b in result["blocks"]}
            for category, case in categories.items():
                if category not in blocks:  # the script died on an earlier category
                    continue
                block = dict(blocks[category])
                if "error" in result and "accuracy" not in block:
                    block.update(error=result["error"], line=result["line"])
                compare(tally, case, block, f"{trial}/{category}")
                tally.compared["script-level categories"] = tally.compared.get("script-level categories", 0) + 1
        tallies.append(tally)
    report(*tallies, n_cases=len(cases), n_answers=sum(len(c["labels"]) for c in cases), n_trials=len(trials))


if __name__ == "__main__":
    main()
