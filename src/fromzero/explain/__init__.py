"""Explanations and attacks on trained classifiers (text fine-tunes, image classification runs).

``fromzero explain``: token attributions (integrated gradients, gradient x input, occlusion), attention maps
recomputed from each attention module's own projections (the fused path stays the default), Grad-CAM for
CNN image runs, and per-class global attributions over a split. ``fromzero attack``: FGSM / PGD on token
embeddings (or pixels) and a greedy word-substitution attack, accuracy per epsilon.
"""

from fromzero.explain.attention_maps import attention_weights, capture_attention
from fromzero.explain.attributions import METHODS, attribute
from fromzero.explain.classifier import TextClassifier, load_classifier
from fromzero.explain.commands import ATTACKS, TEXT_METHODS, attack_run, explain_run, read_inputs
from fromzero.explain.perturbation import fgsm, pgd

__all__ = ["ATTACKS", "METHODS", "TEXT_METHODS", "TextClassifier", "attack_run", "attention_weights", "attribute",
           "capture_attention", "explain_run", "fgsm", "load_classifier", "pgd", "read_inputs"]
