"""Metrics as small pure functions: predictions in, floats (percent unless noted) out.

- ``retrieval``: recall@k in both directions for image-text and video-text retrieval.
- ``classification``: top-k accuracy and mean per-class recall.
- ``mme``: the MME tool's yes/no parsing, acc, acc+ and subtask scores (perception / cognition totals).
- ``pope``: LLaVA's POPE answer parsing; accuracy, precision, recall, F1, yes ratio.
- ``vqa``: VQA accuracy with three evaluators (GT-Vision-Lab master, its Python-3 port, LLaVA's m4c)
  and the EvalAI answer processor for submissions.
- ``tiny_lvlm``: Tiny LVLM-eHub's whole-word answer check.
- ``gqa``: LLaVA's answer conversion and GQA eval.py's balanced accuracy.
- ``caption``: BLEU, METEOR, ROUGE-L, CIDEr (SPICE optional) through pycocoevalcap.
"""
