"""Metrics as small pure functions: tensors in, floats (percent) out.

- ``retrieval``: recall@k in both directions for image-text and video-text retrieval.
- ``classification``: top-k accuracy and mean per-class recall.
"""
