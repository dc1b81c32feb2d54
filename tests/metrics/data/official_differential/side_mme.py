"""Side interpreter: the MME eval_tool's calculation.py, unmodified, on the folders diff_mme.py wrote.

usage: side_mme.py OFFICIAL_DIR WORK_DIR [OUTPUT_NAME]
For each copy (BradyFU eval_tool, InternVL internvl_chat/eval/mme) and each case folder, runs
``calculate_metrics().process_result(folder)`` with the module's ``eval_type_dict`` restricted to the
subtasks present (the tool opens every listed file), captures what it prints (each subtask score and
group total, printed with full float repr) and the metric dicts ``compute_metric`` returns (``acc``;
the tool adds ``acc_plus`` to the same dict). Also ``parse_pred_ans`` on each lower-cased parse probe.
"""
import contextlib
import importlib.util
import io
import json
import os
import sys
import traceback

official, work = sys.argv[1], sys.argv[2]
COPIES = {"bradyfu": os.path.join(official, "mme_bradyfu", "calculation.py"),
          "internvl": os.path.join(official, "mme_internvl", "calculation.py")}
FULL = None


def load(name, path):
    spec = importlib.util.spec_from_file_location("calculation_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_printed(text):
    """{'group:<Perception|Cognition>': total, '<subtask>': score} from the tool's prints."""
    out, group = {}, None
    for line in text.splitlines():
        if line.startswith("=========== "):
            group = line.split()[1]
        elif line.startswith("total score:"):
            out["group:" + group] = float(line.split(":", 1)[1])
        elif line.startswith("\t ") and " score:" in line:
            name, value = line.strip().split("  score:")
            out[name.strip()] = float(value)
    return out


results = {}
for copy_name, path in COPIES.items():
    module = load(copy_name, path)
    full = {k: list(v) for k, v in module.eval_type_dict.items()}
    cal = module.calculate_metrics()
    original = cal.compute_metric
    copy_results = {"parse": [], "cases": {}}
    for response in json.load(open(os.path.join(work, "parse.json"))):
        copy_results["parse"].append(cal.parse_pred_ans(response.lower()))  # the tool lower-cases first
    cases_dir = os.path.join(work, "cases")
    for case in sorted(os.listdir(cases_dir)):
        folder = os.path.join(cases_dir, case)
        present = json.load(open(os.path.join(folder, "subtasks.json")))
        module.eval_type_dict.clear()
        module.eval_type_dict.update({g: [s for s in subtasks if s in present] for g, subtasks in full.items()})
        captured = []

        def compute_metric(gts, preds, _original=original, _captured=captured):
            metric = _original(gts, preds)
            _captured.append(metric)
            return metric

        cal.compute_metric = compute_metric
        order = [s for subtasks in module.eval_type_dict.values() for s in subtasks]
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
                cal.process_result(folder)
        except Exception as error:  # the tool's own failure is a result to report
            copy_results["cases"][case] = {"error": "%s: %s" % (type(error).__name__, error),
                                           "where": traceback.format_exc().strip().splitlines()[-3:]}
            continue
        metrics = parse_printed(printed.getvalue())
        for subtask, metric in zip(order, captured):
            metrics[subtask + "_acc"] = float(metric["acc"]) * 100
            metrics[subtask + "_acc_plus"] = float(metric["acc_plus"]) * 100
            metrics[subtask + "_other_num"] = int(metric["other_num"])
        copy_results["cases"][case] = {"metrics": metrics}
    results[copy_name] = copy_results

import sklearn  # noqa: E402  (the tool imported it already)

results["sklearn"] = sklearn.__version__
json.dump(results, open(os.path.join(work, sys.argv[3] if len(sys.argv) > 3 else "official.json"), "w"))
