"""VQA: internvl_bench.metrics.vqa's three evaluators against the official code they reproduce.

- ``official``: GT-Vision-Lab/VQA master (vqaTools/vqa.py + vqaEvaluation/vqaEval.py), run unmodified
  under Python 2.7;
- ``official-py3``: the same files at PR #5's head (the Python 3 port), under Python 3;
- ``m4c``: LLaVA's llava/eval/m4c_evaluator.py ``TextVQAAccuracyEvaluator`` (and InternVL's copy,
  internvl_chat/eval/vqa/textvqa_eval.py), under Python 3.

Inputs: vqa_cases.json (58 cases) and seeded random questions: ten human answers drawn from one to three
base answers (traps of every normalisation rule), some perturbed (case, trailing period / space / "?",
newline), the prediction a (perturbed) base or another pool answer; random answer types. Aggregates
(overall, per answer type) on the whole set and on 15 random subsets, each written and scored alone. The VQA tool gets
annotation / question / result json files (answer ids 1..10); m4c gets its pred_list. A separate probe set
holds characters on which Python 2 and 3 differ (U+0130's lower-case, Unicode 5.2 vs 14 tables).
"""
from __future__ import annotations

import random

from common import PY2, SIDE_PYTHON, Tally, case_file, dump, load, report, run_side, workdir

from internvl_bench.metrics.vqa import vqa_accuracy, vqa_metrics

SEED = 20240913
N_RANDOM = 600
N_SUBSETS = 15
BASES = ["yes", "no", "Yes", "2", "two", "Two", "none", "0", "zero", "dog", "a dog", "the dog", "Dog", "dogs",
         "dog's", "don't", "dont", "who's", "whos", "man's hat", "man 's hat", "1,000", "1000", "1,000-2,000",
         "10002000", "red,white", "red white", "red, white", "t-shirt", "t shirt", "tshirt", "black/white", "3.5",
         "5.", "5", "U.S.", "us", "hot dog", "hot  dog", "hot\ndog", "hot\tdog", " yes ", "yes.", "yes?", "wow!",
         "wow", '"stop"', "stop", "(a)", "a", "the", "an", "left-right", "left - right", "e-mail", "o'clock",
         "oclock", "ten", "10", "10.0", "1.5.", "what?yes", "what yes", "\u0661\u0662\u0663",
         "\u0661,\u0662-\u0663", "\uff11,\uff12", "it's", "its", "y'all", "yall", "somebody'd", "somebodyd", "ok",
         "OK", "yes" + "." * 33, "yes" + "." * 31, "n/a", "N/A", "c#", "'twas", "twas", "@home", "<none>", "[1]",
         "1;2", "a_b", "x+y", "=", "`x`", "1 , 2", "1,2", "Im", "im", "I'm", "Ive", "one two three", "4:30",
         "caf\u00e9", "CAF\u00c9", "", " ", "?", "...", "3 . 5", "a.m.", "p.m", "\u00a0yes"]
PERTURB = [str.upper, str.capitalize, lambda s: s + ".", lambda s: s + " ", lambda s: " " + s, lambda s: s + "?",
           lambda s: s + "\n", lambda s: s.replace(" ", "  "), lambda s: "\t" + s]
PROBES = [  # Python 2 vs 3: lower() of U+0130 (one vs two characters), Unicode 5.2 vs 14 (Georgian Mtavruli
    # capitals, added in 11.0; U+180E was whitespace until 6.3)
    ("\u0130", ["i"] * 5 + ["x"] * 5), ("\u0130stanbul", ["istanbul"] * 6 + ["x"] * 4),
    ("\u1c90\u1c91", ["\u10d0\u10d1"] * 4 + ["x"] * 6), ("a\u180eb", ["a b"] * 4 + ["x"] * 6),
    ("caf\u00c9", ["caf\u00e9"] * 4 + ["x"] * 6), ("\u0661,\u0662", ["\u0661\u0662"] * 4 + ["x"] * 6),
]
TYPES = ["yes/no", "number", "other"]


def perturb(rng: random.Random, text: str) -> str:
    return rng.choice(PERTURB)(text) if rng.random() < 0.3 else text


def random_question(rng: random.Random) -> tuple[str, list[str]]:
    k = 1 if rng.random() < 0.35 else rng.randint(2, 3)
    bases = rng.sample(BASES, k)
    weights = [rng.random() + 0.05 for _ in bases]
    unanimous = k == 1 and rng.random() < 0.7
    humans = [bases[0]] * 10 if unanimous else [perturb(rng, rng.choices(bases, weights)[0]) for _ in range(10)]
    prediction = perturb(rng, rng.choice(bases)) if rng.random() < 0.6 else rng.choice(BASES)
    return prediction, humans


def write_vqa(folder, questions) -> None:
    """The VQA tool's annotation, question and result files; m4c's pred_list."""
    info = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "license": {}}
    annotations = [{"question_id": qid, "image_id": qid, "question_type": "what", "answer_type": t,
                    "multiple_choice_answer": gts[0],
                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(gts)]}
                   for qid, (_, gts, t) in enumerate(questions)]
    dump(folder / "annotations.json", dict(info, annotations=annotations))
    dump(folder / "questions.json", dict(info, questions=[{"question_id": q, "image_id": q, "question": "?"}
                                                          for q in range(len(questions))]))
    dump(folder / "results.json", [{"question_id": q, "answer": p} for q, (p, _, _) in enumerate(questions)])
    dump(folder / "m4c.json", [{"pred_answer": p, "gt_answers": gts} for p, gts, _ in questions])


def run_all(folder) -> dict:
    out = {}
    for name, python, which, digits in (("official", PY2, "vqa_master", 20), ("official@2", PY2, "vqa_master", 2),
                                        ("official-py3", SIDE_PYTHON, "vqa_pr5", 20),
                                        ("official-py3@2", SIDE_PYTHON, "vqa_pr5", 2)):
        run_side("side_vqa.py", folder, which, digits, folder / f"{name}.json", python=python)
        out[name] = load(folder / f"{name}.json")
    run_side("side_vqa.py", folder, "m4c", folder / "m4c_out.json")
    out["m4c"] = load(folder / "m4c_out.json")
    return out


def compare(questions, official, tallies, label) -> None:
    predictions, gts, types = zip(*questions)
    for evaluator in ("official", "official-py3"):
        tally, theirs, rounded = tallies[evaluator], official[evaluator], official[evaluator + "@2"]
        for qid, (p, g, _) in enumerate(questions):
            tally.number("per-question", 100 * vqa_accuracy(p, g, evaluator), theirs["evalQA"][str(qid)],
                         {"set": label, "prediction": p, "gt_answers": g})
        ours = vqa_metrics(predictions, gts, types, evaluator)
        tally.number("overall", ours["accuracy"], theirs["overall"], label)
        tally.number("overall, 2 decimals (as printed)", round(ours["accuracy"], 2), rounded["overall"], label)
        for t, value in theirs["perAnswerType"].items():
            tally.number("per answer type", ours[f"accuracy_{t}"], value, (label, t))
            tally.number("per answer type, 2 decimals", round(ours[f"accuracy_{t}"], 2), rounded["perAnswerType"][t], (label, t))
        if f"Python {theirs['python']}" not in " ".join(tally.notes):
            tally.notes.append(f"{evaluator} ran under Python {theirs['python']}")
    for copy in ("llava", "internvl"):
        tally, theirs = tallies[f"m4c ({copy})"], official["m4c"][copy]
        for qid, (p, g, _) in enumerate(questions):
            tally.number("per-question", vqa_accuracy(p, g, "m4c"), theirs["per_question"][qid],
                         {"set": label, "prediction": p, "gt_answers": g})
        # eval_pred_list returns a fraction; ours is (100 * sum) / n, the script prints 100 * (sum / n)
        tally.number("overall (x100)", vqa_metrics(predictions, gts, evaluator="m4c")["accuracy"],
                     100 * theirs["overall"], label, tol=1e-9)


def main() -> None:
    rng = random.Random(SEED)
    sources = {"official": "GT-Vision-Lab/VQA master vqaEval.py + vqa.py (Python 2.7.18, unmodified)",
               "official-py3": "GT-Vision-Lab/VQA PR #5 head vqaEval.py + vqa.py (Python 3.11)",
               "m4c (llava)": "LLaVA llava/eval/m4c_evaluator.py TextVQAAccuracyEvaluator",
               "m4c (internvl)": "InternVL internvl_chat/eval/vqa/textvqa_eval.py TextVQAAccuracyEvaluator"}
    tallies = {name: Tally(f"vqa {name.split(' ')[0]}", source) for name, source in sources.items()}
    cases = case_file("vqa_cases.json")["cases"]
    main_set = [(c["prediction"], c["gt_answers"], rng.choice(TYPES)) for c in cases]
    main_set += [(*random_question(rng), rng.choice(TYPES)) for _ in range(N_RANDOM)]
    folder = workdir("vqa/main")
    write_vqa(folder, main_set)
    official = run_all(folder)
    compare(main_set, official, tallies, "case file + random")
    for qid, c in enumerate(cases):  # the official tools against the case file's hand-computed values
        for evaluator, expected in c["expected"].items():
            if evaluator == "m4c":
                for copy in ("llava", "internvl"):
                    tallies[f"m4c ({copy})"].number("official vs case-file expectation",
                                                    official["m4c"][copy]["per_question"][qid], expected, c["name"], tol=1e-12)
            else:
                tallies[evaluator].number("official vs case-file expectation",
                                          official[evaluator]["evalQA"][str(qid)] / 100, expected, c["name"], tol=1e-12)
    for n in range(N_SUBSETS):  # aggregates on more sets: random subsets, each scored as its own files
        subset = rng.sample(main_set, rng.randint(5, 200))
        folder = workdir(f"vqa/subset_{n:02d}")
        write_vqa(folder, subset)
        compare(subset, run_all(folder), tallies, f"subset {n}")
    probe_tallies = {name: Tally(f"vqa {name.split(' ')[0]} (Python 2/3 probes)", source) for name, source in sources.items()}
    probes = [(p, g, "other") for p, g in PROBES]
    folder = workdir("vqa/probes")
    write_vqa(folder, probes)
    compare(probes, run_all(folder), probe_tallies, "probes")
    report(*tallies.values(), *probe_tallies.values(), n_questions=len(main_set), n_probes=len(probes))


if __name__ == "__main__":
    main()
