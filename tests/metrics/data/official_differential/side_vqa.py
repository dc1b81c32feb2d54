# -*- coding: utf-8 -*-
"""Side interpreter (Python 2.7 for GT-Vision-Lab/VQA master, Python 3 for PR #5, m4c): the official VQA
evaluators, unmodified, on the files diff_vqa.py wrote.

usage: side_vqa.py OFFICIAL_DIR WORK_DIR vqa_master|vqa_pr5 N_DIGITS OUTPUT
       side_vqa.py OFFICIAL_DIR WORK_DIR m4c OUTPUT
VQA tool: ``VQA(annotation, questions)``, ``loadRes(results, questions)``, ``VQAEval(vqa, res, n=N_DIGITS)``,
``evaluate()``; writes ``accuracy`` (overall, per answer type) and ``evalQA`` (per question), rounded to
N_DIGITS as the tool rounds them (20 digits: unrounded for numbers of this size).
m4c: LLaVA's ``TextVQAAccuracyEvaluator().eval_pred_list`` (and InternVL's copy, textvqa_eval.py) on the
whole list and on each question alone.
Written to run under Python 2 and 3 alike (no f-strings).
"""
import io
import json
import os
import sys

official, work, which = sys.argv[1], sys.argv[2], sys.argv[3]
devnull = open(os.devnull, "w")


def quiet(function, *args):
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = devnull
    try:
        return function(*args)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


if which in ("vqa_master", "vqa_pr5"):
    digits, output = int(sys.argv[4]), sys.argv[5]
    sys.path.insert(0, os.path.join(official, which))
    from vqa import VQA
    from vqaEval import VQAEval

    annotation = os.path.join(work, "annotations.json")
    questions = os.path.join(work, "questions.json")
    vqa = quiet(VQA, annotation, questions)
    res = quiet(vqa.loadRes, os.path.join(work, "results.json"), questions)
    evaluator = VQAEval(vqa, res, n=digits)
    quiet(evaluator.evaluate)
    out = {"overall": evaluator.accuracy["overall"], "perAnswerType": evaluator.accuracy["perAnswerType"],
           "evalQA": dict((str(k), v) for k, v in evaluator.evalQA.items()), "python": sys.version.split()[0]}
else:
    output = sys.argv[4]
    import importlib.util

    entries = json.load(io.open(os.path.join(work, "m4c.json"), encoding="utf-8"))
    out = {"python": sys.version.split()[0]}
    for name, path in (("llava", os.path.join(official, "m4c_llava", "m4c_evaluator.py")),
                       ("internvl", os.path.join(official, "m4c_internvl", "textvqa_eval.py"))):
        spec = importlib.util.spec_from_file_location("m4c_" + name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        evaluator = module.TextVQAAccuracyEvaluator()
        # eval_pred_list only reads pred_answer and gt_answers; fresh copies each call
        fresh = lambda: [{"pred_answer": e["pred_answer"], "gt_answers": list(e["gt_answers"])} for e in entries]
        out[name] = {"overall": quiet(evaluator.eval_pred_list, fresh()),
                     "per_question": [quiet(evaluator.eval_pred_list, [e]) for e in fresh()]}

json.dump(out, open(output, "w"))
