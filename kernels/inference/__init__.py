"""The inference kernel: all-MiniLM-L6-v2 sentence embeddings on our array-module kernels."""

from kernels.inference.encoder import Encoder
from kernels.inference.errors import InferenceError, ModelMissing
from kernels.inference.model import (
    MODEL_DIR_ENV,
    MODEL_NAME,
    MODEL_PACKAGE,
    BertConfig,
    Model,
    find_model_dir,
    install_hint,
    load_model,
    model_status,
)
from kernels.inference.runner import DEFAULT_BATCH_SIZE, SentenceEncoder

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MODEL_DIR_ENV",
    "MODEL_NAME",
    "MODEL_PACKAGE",
    "BertConfig",
    "Encoder",
    "InferenceError",
    "Model",
    "ModelMissing",
    "SentenceEncoder",
    "find_model_dir",
    "install_hint",
    "load_model",
    "model_status",
]
