"""The experiment tags the mirror gives gravtrain experiments for MLflow's UI (`gravtrain.stores.mirror`):
their kind, and a view of the runs: the table with the stage and the headline metrics their runs have, and the
chart view with its sections in `CHART_SECTIONS`'s order, physics first.

The view is stored as MLflow's UI stores a shared view (its "Share" button): the table's columns and order, and
the chart view's sections (``compareRunSections``, kept in the given order by ``isAccordionReordered``) with a
line chart of each headline metric (``compareRunCharts``); the UI adds a chart for every other metric of the
runs to its section when it opens the view."""

from __future__ import annotations

import json

from gravtrain.tracking.headline_metrics import (
    CHART_SECTIONS, LIST_METRICS, SYSTEM_METRICS_SECTION, chart_section,
)
from gravtrain.tracking.run import EXPERIMENT_KIND_TAGS

#: The key of the runs-table view the mirror gives each gravtrain experiment: MLflow's UI opens an experiment's
#: runs with the view stored in its tag ``mlflow.sharedViewState.<key>`` when the address names the key
#: (``?viewStateShareKey=<key>``), as its "Share" button does.
VIEW_SHARE_KEY = "gravtrain"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def ordered_sections(sections) -> list[str]:
    """``sections`` in the chart view's order: those of `CHART_SECTIONS` in its order, then any other
    alphabetically, MLflow's system metrics last."""
    known = [name for name in CHART_SECTIONS if name in sections and name != SYSTEM_METRICS_SECTION]
    system = [SYSTEM_METRICS_SECTION] if SYSTEM_METRICS_SECTION in sections else []
    return known + sorted(set(sections) - set(CHART_SECTIONS)) + system


def _line_chart(metric: str, section_id: str) -> dict:
    """A line chart of one metric against the step, as the UI serialises one it generates."""
    return {"uuid": f"gravtrain-chart-{metric}", "type": "LINE", "metricSectionId": section_id, "metricKey": metric,
            "selectedMetricKeys": [metric], "isGenerated": True, "deleted": False, "runsCountToCompare": 10,
            "lineSmoothness": 0, "xAxisKey": "step", "xAxisScaleType": "linear", "scaleType": "linear",
            "selectedXAxisMetricKey": "", "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False,
            "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True,
            "range": {"xMin": None, "xMax": None, "yMin": None, "yMax": None}}


def runs_table_view(headline: list[str], sections=()) -> str:
    """The view of a gravtrain experiment, as MLflow's UI stores a shared view: in the runs table the stage and
    the ``headline`` metrics as columns, newest run first; in the chart view the ``sections`` of its runs'
    metrics in `ordered_sections`'s order, each headline metric's chart first in its section."""
    columns = ["tags.`gravtrain.stage`", *(f"metrics.`{key}`" for key in headline), "attributes.`Source`"]
    view = {"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False}
    if sections:
        names = ordered_sections(set(sections) | {chart_section(key) for key in headline})
        ids = {name: f"gravtrain-section-{name}" for name in names}
        view.update(
            compareRunSections=[{"uuid": ids[name], "name": name, "display": True, "isReordered": False,
                                 "deleted": False, "isGenerated": True} for name in names],
            compareRunCharts=[_line_chart(key, ids[chart_section(key)]) for key in headline],
            isAccordionReordered=True)
    return json.dumps(view)


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
        sections = {name for info in infos for name in info.get("sections", ())}
        tags[experiment] = {kind: custom if infos else None, f"{SHARED_VIEW_TAG_PREFIX}{VIEW_SHARE_KEY}":
                            runs_table_view(headline, sections) if infos else None}
    return tags
