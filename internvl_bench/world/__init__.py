"""The synthetic world behind ``make demo``: scenes (``scenes``), their captions in eight languages
(``language``), questions with answers (``questions``) and replicas of every benchmark in its real
on-disk layout (``replicas``). The demo models were trained on scenes of it (``scripts/train_demo_models.py``)."""
