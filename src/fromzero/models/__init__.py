"""Model families and the registry. Importing this package registers every family."""

from fromzero.models import gpt  # noqa: F401  (registers the "gpt" family and presets)
from fromzero.models.gpt import GPT, GPTConfig
from fromzero.models.registry import (
    build_model,
    create_model,
    family_of,
    list_families,
    list_models,
    model_config,
    register_family,
    register_model,
)

__all__ = [
    "GPT", "GPTConfig", "build_model", "create_model", "family_of", "list_families", "list_models",
    "model_config", "register_family", "register_model",
]
