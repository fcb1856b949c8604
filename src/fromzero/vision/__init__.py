"""Image runs on the same machinery as text: a vision recipe, the one Trainer, a run directory.

``recipe.py`` (the recipe), ``tasks.py`` (objective, model fields and whole-split metrics per task),
``runner.py`` (``train_vision``), ``hooks.py``, ``init_weights.py`` (MAE encoder -> ViT), ``evaluate.py``
(test metrics and pictures), ``inference.py`` and ``predict.py`` (no training imports: serving uses them),
``info.py``. Kept import-free so ``serve`` can import ``inference`` without pulling in training.
"""
