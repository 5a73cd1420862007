"""The config language: schema, strict YAML loader, ``--set`` overrides and `ConfigError`.

Importing this package is cheap (no TensorFlow), so ``gravtrain check`` answers in well under a second.
"""

from gravtrain.config.errors import ConfigError, ConfigIssue
from gravtrain.config.loader import load_config, resolve_config, resolved_yaml
from gravtrain.config.schema import Config

__all__ = ["Config", "ConfigError", "ConfigIssue", "load_config", "resolve_config", "resolved_yaml"]
