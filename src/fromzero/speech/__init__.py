"""Speech recognition runs: a CTC recipe -> run directory (``runner.py``), its test WER/CER (``evaluate.py``),
and transcribing a WAV file with a finished run (``inference.py``). docs/24-classic-baselines.md, speech."""
