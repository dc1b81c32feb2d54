"""GQA: internvl_bench.metrics.gqa against LLaVA's scripts/convert_gqa_for_eval.py + the GQA eval.py.

The Stanford-hosted eval.py is not on GitHub; LLaVA asks users to download it and patch it (a gist) for
the assets missing from GQA v1.2. Two vendored copies under LLaVA's path playground/data/eval/gqa/data/eval/
are run: SHI-Labs/VCoder's (loop over balanced questions only, scenes/choices optional) and xyang583/ARDS's
(scene graphs, choices, validity, plausibility, grounding, consistency commented out; reads every
question's prediction before testing isBalanced).

Inputs: gqa_cases.json (conversion probes, accuracy cases, error cases) and seeded random trials: questions
with random isBalanced flags and answers; raw model answers that are the answer perturbed (case, trailing
periods, leading / trailing spaces, "!", newline) or another answer; every balanced question answered,
unbalanced ones all answered in half the trials, else each with probability 1/2. Each trial is a folder as LLaVA's gqa.sh leaves it: the model's
answers.jsonl ({"question_id", "text"}) and testdev_balanced_questions.json, with the fields eval.py reads
besides answer / isBalanced filled with neutral values (question text, empty semantic program, types,
a global group).
"""
from __future__ import annotations

import json
import random
import shutil

from common import Tally, case_file, dump, load, report, run_side, workdir

from internvl_bench.errors import BenchError
from internvl_bench.metrics.gqa import gqa_accuracy, gqa_prediction

SEED = 20240915
N_TRIALS = 300
ANSWERS = ["yes", "no", "left", "right", "table", "white", "man", "blue", "t-shirt", "mr. smith", "red", "dog",
           "bottom", "top", "wood", "metal", "2", "the man"]
PERTURB = [str.capitalize, str.upper, lambda s: s + ".", lambda s: s + "...", lambda s: " " + s, lambda s: s + " ",
           lambda s: s + "!", lambda s: s + ".\n", lambda s: s.capitalize() + ". ", lambda s: s + ". .", lambda s: "the " + s]


def full_question(question: dict, rng: random.Random) -> dict:
    """A question with the fields eval.py reads (answer and isBalanced as given)."""
    return dict(question, question="What is it?", semantic=[], imageId="img",
                types={"structural": rng.choice(["query", "verify", "logical"]), "semantic": "obj", "detailed": "x"},
                groups={"global": "g", "local": "l"})


def random_trial(rng: random.Random) -> dict:
    n = rng.randint(1, 50)
    questions = {f"{rng.randint(0, 10**8)}{i:02d}": {"answer": rng.choice(ANSWERS), "isBalanced": rng.random() < 0.7}
                 for i in range(n)}
    if not any(q["isBalanced"] for q in questions.values()):
        next(iter(questions.values()))["isBalanced"] = True
    predictions = {}
    answer_all = rng.random() < 0.5  # else some unbalanced questions go unanswered
    for qid, q in questions.items():
        if q["isBalanced"] or answer_all or rng.random() < 0.5:
            base = q["answer"] if rng.random() < 0.6 else rng.choice(ANSWERS)
            predictions[qid] = rng.choice(PERTURB)(base) if rng.random() < 0.6 else base
    return {"questions": questions, "predictions": predictions}


def write_trial(folder, trial, rng) -> None:
    folder.mkdir(parents=True)
    dump(folder / "testdev_balanced_questions.json", {qid: full_question(q, rng) for qid, q in trial["questions"].items()})
    (folder / "answers.jsonl").write_text("".join(json.dumps({"question_id": qid, "text": text}) + "\n"
                                                  for qid, text in trial["predictions"].items()))


def main() -> None:
    rng = random.Random(SEED)
    data = case_file("gqa_cases.json")
    work = workdir("gqa")
    shutil.rmtree(work / "trials", ignore_errors=True)
    trials = {}
    convert = data["convert"]  # conversion probes: one trial, each text the answer to a balanced question
    trials["convert"] = {"questions": {f"c{i}": {"answer": gqa_prediction(c["text"]), "isBalanced": True}
                                       for i, c in enumerate(convert)},
                         "predictions": {f"c{i}": c["text"] for i, c in enumerate(convert)}}
    trials |= {f"file_{n}": {"questions": c["questions"], "predictions": c["predictions"]} for n, c in enumerate(data["cases"])}
    trials |= {f"rand_{n:03d}": random_trial(rng) for n in range(N_TRIALS)}
    errors = {f"err_{n}": c for n, c in enumerate(data["errors"])}
    for name, trial in (trials | errors).items():
        write_trial(work / "trials" / name, trial, rng)
    run_side("side_gqa.py", work)
    official = load(work / "official.json")

    sources = {"vcoder": "LLaVA scripts/convert_gqa_for_eval.py + GQA eval.py, SHI-Labs/VCoder's copy",
               "ards": "LLaVA scripts/convert_gqa_for_eval.py + GQA eval.py, xyang583/ARDS's copy"}
    tallies = []
    for variant, source in sources.items():
        tally = Tally("gqa", source)
        for name, trial in trials.items():
            theirs = official[variant][name]
            unanswered = [q for q in trial["questions"] if q not in trial["predictions"]]
            if "error" in theirs:
                if variant == "ards" and theirs["error"].startswith("KeyError") and unanswered:
                    # this copy reads predictions[qid] for every question before its isBalanced test
                    tally.compared["KeyError: unbalanced question left unanswered"] = (
                        tally.compared.get("KeyError: unbalanced question left unanswered", 0) + 1)
                else:
                    tally.mismatches.append({"metric": "run", "case": name, "official": theirs["error"]})
                continue
            for row in theirs["converted"]:
                tally.same("conversion", gqa_prediction(trial["predictions"][row["questionId"]]), row["prediction"], row)
            tally.number("accuracy", gqa_accuracy(trial["predictions"], trial["questions"])["accuracy"],
                         theirs["scores"]["accuracy"], name)
        for name, case in errors.items():
            try:
                gqa_accuracy(case["predictions"], case["questions"])
                ours = "scored"
            except BenchError as error:
                ours = f"BenchError: {error}"
            theirs = official[variant][name].get("error") or {"accuracy": official[variant][name]["scores"]["accuracy"]}
            tally.notes.append(f"error case {case['name']!r}: ours {ours!r}; eval.py {theirs!r}")
        tallies.append(tally)
    report(*tallies, n_trials=len(trials), n_questions=sum(len(t["questions"]) for t in trials.values()),
           n_balanced=sum(q["isBalanced"] for t in trials.values() for q in t["questions"].values()))


if __name__ == "__main__":
    main()
