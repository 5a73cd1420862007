"""gravtrain's version, in one place: the package, ``gravtrain --version``, a run's provenance, the logged model's
requirements and setup.cfg (``attr:``) all read it here. A module of its own, so reading it imports nothing else."""

__version__ = "0.1.0"
