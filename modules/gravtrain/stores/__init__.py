"""Reading and serving stores of runs: a fast local mirror of a store on a slow mount (`mirror`), ``gravtrain ui``
(`ui`), ``gravtrain runs list`` (`run_list`), ``runs compare`` (`compare`) and ``runs doctor`` (`doctor`, which
also repairs a run before training resumes it).

Runs are written by `gravtrain.tracking`; this room imports its names and its store helpers, never the other way
round. Importing it is cheap: MLflow is imported when a store is read.
"""

from gravtrain.stores.ui import serve_ui, ui_command_line, ui_environment

__all__ = ["serve_ui", "ui_command_line", "ui_environment"]
