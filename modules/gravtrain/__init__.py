"""gravtrain: train GravNet graph networks on detector data from one YAML file."""

__version__ = "0.1.0"
