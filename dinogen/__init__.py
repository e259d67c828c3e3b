"""dinogen: learn what names of a kind look like with a character-level RNN, and write new ones.

The public API is re-exported lazily so that `dinogen --help` answers without importing torch.
"""

import warnings
from importlib import import_module

__version__ = "0.1.0"

# torch warns on import when NumPy is absent; dinogen never uses NumPy, so the warning is noise.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

_EXPORTS = {
    "DinogenError": "errors",
    "Config": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "load_config": "config",
    "Vocab": "data",
    "read_names": "data",
    "CharRNN": "model",
    "Ensemble": "model",
    "Trainer": "train",
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "Generator": "sample",
    "ScoredName": "scored",
    "NotEnoughNames": "sample",
    "resolve_device": "device",
    "bundled_model": "bundled",
    "Run": "run",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"dinogen.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'dinogen' has no attribute {name!r}")
