"""Run directories: the one way to open one (pretrained, imported or fine-tuned) and find its weights."""

from fromzero.runs.run import (
    FINETUNE_INFO,
    VISION_INFO,
    VISION_TASKS,
    Run,
    is_finetune_recipe_data,
    is_finetune_run,
    is_vision_recipe_data,
    load_run,
    open_run_dir,
    read_compression_info,
    read_run_json,
    recipe_command,
    require_fresh_run_dir,
    require_resumable_run_dir,
    run_dir_for,
)
from fromzero.runs.weights import check_shapes, find_weights, load_weights

__all__ = [
    "FINETUNE_INFO", "VISION_INFO", "VISION_TASKS", "Run", "check_shapes", "find_weights", "is_finetune_recipe_data",
    "is_finetune_run", "is_vision_recipe_data", "load_run", "load_weights", "read_compression_info", "read_run_json",
    "open_run_dir", "recipe_command",
    "require_fresh_run_dir", "require_resumable_run_dir", "run_dir_for",
]
