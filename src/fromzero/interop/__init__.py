"""Hugging Face interop: declarative key maps, checkpoint import and export, run directories.

    load_hf_model(folder)                  HF checkpoint folder -> fromzero model (+ head), exact
    export_model(model, tokenizer, out)    fromzero model (LoRA merged) -> folder from_pretrained loads
    import_to_run(source, run_dir)         local folder or hub id -> fromzero run directory
    export_run(run_dir, out)               run directory -> HF folder

Families: GPT-2, Llama-style decoders, BERT (+ MLM / NSP / task heads), T5 and T5 v1.1.
See docs/10-hugging-face-interop.md.
"""

from fromzero.interop.hf import HFExport, ImportedModel, export_model, load_hf_model, to_hf_checkpoint
from fromzero.interop.hf_files import read_checkpoint
from fromzero.interop.hf_hub import resolve_source
from fromzero.interop.hf_run import ImportReport, export_run, import_to_run
from fromzero.interop.hf_tokenizer import load_hf_tokenizer, save_hf_tokenizer

__all__ = [
    "HFExport", "ImportReport", "ImportedModel", "export_model", "export_run", "import_to_run", "load_hf_model",
    "load_hf_tokenizer", "read_checkpoint", "resolve_source", "save_hf_tokenizer", "to_hf_checkpoint",
]
