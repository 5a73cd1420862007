"""The parts of ``benchmarks/remote_dashboard.py`` (its docstring says what it measures), one concern each."""
