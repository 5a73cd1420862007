"""gravtrain: train GravNet graph networks on detector data from one YAML file.

``gravtrain.train(config_or_path, overrides=(), tracking=True)`` is the Python face of
``python config_trainer.py CONFIG``; it imports TensorFlow on first use, not with this package.
"""

from gravtrain.version import __version__

__all__ = ["__version__", "train"]


def __getattr__(name: str):
    if name == "train":
        from gravtrain.training import train

        return train
    raise AttributeError(f"module 'gravtrain' has no attribute '{name}'")
