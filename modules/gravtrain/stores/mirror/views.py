"""The experiment tags the mirror gives gravtrain experiments for MLflow's UI (`gravtrain.stores.mirror`):
their kind, and a runs-table view of the stage and the headline metrics their runs have."""

from __future__ import annotations

import json

from gravtrain.tracking.headline_metrics import LIST_METRICS
from gravtrain.tracking.run import EXPERIMENT_KIND_TAGS

#: The key of the runs-table view the mirror gives each gravtrain experiment: MLflow's UI opens an experiment's
#: runs with the view stored in its tag ``mlflow.sharedViewState.<key>`` when the address names the key
#: (``?viewStateShareKey=<key>``), as its "Share" button does.
VIEW_SHARE_KEY = "gravtrain"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def runs_table_view(headline: list[str]) -> str:
    """The runs-table view of a gravtrain experiment, as MLflow's UI stores a shared view: the stage and the
    ``headline`` metrics as columns, newest run first."""
    columns = ["tags.`gravtrain.stage`", *(f"metrics.`{key}`" for key in headline), "attributes.`Source`"]
    return json.dumps({"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False})


def experiment_view_tags(runs: dict[str, dict], experiments: list[str]) -> dict[str, dict[str, str | None]]:
    """The tags each experiment's copy should have, from the mirror's record of its runs (``runs``:
    ``"<experiment>/<run>"`` -> info with ``gravtrain`` and ``headline``): the kind and the runs-table view for
    an experiment with gravtrain runs, None (no such tag) for any other."""
    (kind, custom), = EXPERIMENT_KIND_TAGS.items()
    runs_of: dict[str, list[dict]] = {}
    for run, info in runs.items():
        runs_of.setdefault(run.split("/", 1)[0], []).append(info)
    tags = {}
    for experiment in experiments:
        infos = [info for info in runs_of.get(experiment, ()) if info["gravtrain"]]
        headline = sorted({key for info in infos for key in info.get("headline", ())}, key=LIST_METRICS.index)
        tags[experiment] = {kind: custom if infos else None,
                            f"{SHARED_VIEW_TAG_PREFIX}{VIEW_SHARE_KEY}": runs_table_view(headline) if infos else None}
    return tags
