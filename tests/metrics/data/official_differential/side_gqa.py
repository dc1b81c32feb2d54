"""Side interpreter: LLaVA's scripts/convert_gqa_for_eval.py and the GQA eval.py LLaVA distributes, both
unmodified, on the trial folders diff_gqa.py wrote.

usage: side_gqa.py OFFICIAL_DIR WORK_DIR
Two variants of eval.py are in circulation under LLaVA's playground path (see diff_gqa.py); each runs.
Per folder, as LLaVA's scripts/v1_5/eval/gqa.sh does: ``convert_gqa_for_eval.py --src answers.jsonl
--dst testdev_balanced_predictions.json``, then, in the folder, ``eval.py --tier testdev_balanced``
(reading testdev_balanced_questions.json; no scene graphs or choices, as for testdev). The script's
``scores`` (already averaged, x100) are read from its globals; an exception is recorded.
"""
import contextlib
import io
import json
import os
import runpy
import sys

official, work = sys.argv[1], sys.argv[2]
convert = os.path.join(official, "gqa", "convert_gqa_for_eval.py")
VARIANTS = {"vcoder": os.path.join(official, "gqa", "eval.py"),  # balanced-only loop, optional scenes/choices
            "ards": os.path.join(official, "gqa_ards", "eval.py")}  # every question's prediction read; assets commented out


def run(path, argv):
    saved, sys.argv = sys.argv, [os.path.basename(path)] + argv
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = saved


results = {}
home = os.getcwd()
trials = os.path.join(work, "trials")
for variant, evaluate in VARIANTS.items():
    results[variant] = {}
    for trial in sorted(os.listdir(trials)):
        folder = os.path.join(trials, trial)
        record = {}
        try:
            run(convert, ["--src", os.path.join(folder, "answers.jsonl"),
                          "--dst", os.path.join(folder, "testdev_balanced_predictions.json")])
            record["converted"] = json.load(open(os.path.join(folder, "testdev_balanced_predictions.json")))
            os.chdir(folder)
            names = run(evaluate, ["--tier", "testdev_balanced"])
            record["scores"] = {k: names["scores"][k] for k in ("accuracy", "binary", "open")}
        except Exception as error:
            record["error"] = "%s: %s" % (type(error).__name__, error)
        finally:
            os.chdir(home)
        results[variant][trial] = record
json.dump(results, open(os.path.join(work, "official.json"), "w"))
