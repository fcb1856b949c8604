"""fromzero: develop large models from zero, every line readable."""

__version__ = "0.1.0"
