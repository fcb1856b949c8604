"""Pretraining runs: recipe -> data -> model -> objective -> Trainer -> run directory.

    recipe.py      the pretraining recipe (YAML -> validated dataclasses)
    tasks.py       what each pretraining objective needs around the Trainer (batches, special tokens, samples)
    continued.py   continued pretraining: ``init: RUN_DIR`` starts from a run's weights and tokenizer
    runner.py      ``pretrain()``: what ``fromzero pretrain`` runs
"""

from fromzero.pretrain.recipe import PretrainRecipe, load_recipe
from fromzero.pretrain.runner import PretrainResult, pretrain

__all__ = ["PretrainRecipe", "PretrainResult", "load_recipe", "pretrain"]
