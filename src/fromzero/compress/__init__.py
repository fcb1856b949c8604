"""Model compression: pruning, quantization and distillation of run directories into new run directories.

Each method reads a run directory and writes a new one (``run_output.write_compressed_run``) that
``fromzero.runs.load_run`` opens like any other; see docs/14-compression.md.
"""

from fromzero.compress.distill import DistillConfig, distill
from fromzero.compress.prune_run import PruneResult, prune_run
from fromzero.compress.quantize import DEFAULT_KEEP_FLOAT, QuantizeReport, quantize_model, quantize_run

__all__ = ["DEFAULT_KEEP_FLOAT", "DistillConfig", "PruneResult", "QuantizeReport", "distill", "prune_run",
           "quantize_model", "quantize_run"]
