"""Model families and the registry. Importing this package registers every family."""

# importing each family registers it and its presets
from fromzero.models import (  # noqa: F401  (text, images, recommenders)
    autoencoder,
    bert,
    bert4rec,
    cnn,
    content_based,
    conv_autoencoder,
    ctc_speech,
    denoiser,
    fcn,
    gpt,
    inception,
    item_knn,
    mae,
    matrix_factorization,
    ngram,
    popularity,
    rcnn,
    resnet,
    rnn,
    sasrec,
    seq2seq_rnn,
    t5,
    two_tower,
    unet,
    vit,
    word2vec,
    yolo,
)
from fromzero.models.bert import Bert, BertConfig
from fromzero.models.gpt import GPT, GPTConfig
from fromzero.models.registry import (
    build_model,
    config_class,
    context_length,
    create_model,
    data_filled_config,
    family_of,
    list_families,
    list_models,
    model_config,
    register_family,
    register_model,
)
from fromzero.models.t5 import T5, T5Config

__all__ = [
    "GPT", "Bert", "BertConfig", "GPTConfig", "build_model", "config_class", "data_filled_config", "context_length",
    "create_model",
    "family_of", "list_families", "list_models", "model_config", "register_family", "register_model",
]
__all__ += ["T5", "T5Config"]
