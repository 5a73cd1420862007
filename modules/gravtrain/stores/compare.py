"""``gravtrain runs compare``: what differs between MLflow runs of a store, config and results side by side.

Two halves, one concern each:

- `compare_runs` is pure: from plain `RunRecord` values (ID, name, params, latest metric values) it builds a
  `RunComparison`, which renders as a fixed-width text table (`RunComparison.table`) or as plain data for JSON
  (`RunComparison.to_dict`). The first run is the reference: every other run's metric shows its value and its
  delta (value - reference).
- `read_runs` opens a store with MLflow's own client and reads the runs a user named, by full run ID or by a
  unique prefix of at least `MIN_PREFIX_LENGTH` hex characters (as git names commits).

Params are the flattened config (``Training.0.learning_rate``; see `gravtrain.tracking.params`), kept as the
strings MLflow stores. Metrics are MLflow's latest value of each key (``run.data.metrics``).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from gravtrain.stores.tables import MISSING, aligned, format_number
from gravtrain.tracking.errors import TrackingError
from gravtrain.tracking.headline_metrics import COMPARE_FIRST

logger = logging.getLogger(__name__)

#: The fewest leading characters of a run ID that name it.
MIN_PREFIX_LENGTH = 6
#: The length of an MLflow run ID (``uuid4().hex``); a reference this long is looked up directly.
RUN_ID_LENGTH = 32
#: Characters of a run ID shown in a column heading.
SHORT_ID_LENGTH = 8
#: A param value longer than this is cut short in the table (never in `RunComparison.to_dict`).
MAX_CELL_WIDTH = 40
#: Candidates listed when a prefix matches several runs.
MAX_CANDIDATES_SHOWN = 10

_RUN_REFERENCE = re.compile(rf"[0-9a-f]{{{MIN_PREFIX_LENGTH},{RUN_ID_LENGTH}}}")


@dataclass(frozen=True)
class RunRecord:
    """What a comparison needs of one run: plain data, no MLflow objects."""

    run_id: str
    name: str
    params: Mapping[str, str] = field(default_factory=dict)  #: the flattened config, as MLflow stores it
    metrics: Mapping[str, float] = field(default_factory=dict)  #: the latest value of each metric
    experiment_id: str | None = None

    @property
    def short_id(self) -> str:
        return self.run_id[:SHORT_ID_LENGTH]


@dataclass(frozen=True)
class RunComparison:
    """Params and metrics of several runs side by side; the first run is the reference for metric deltas.

    ``params`` and ``metrics`` map each key to one value per run (None where the run lacks the key), params in
    natural key order (``Training.2`` before ``Training.10``), metrics with `COMPARE_FIRST` first.
    """

    runs: tuple[RunRecord, ...]
    params: dict[str, tuple[str | None, ...]]
    metrics: dict[str, tuple[float | None, ...]]

    @property
    def differing_params(self) -> dict[str, tuple[str | None, ...]]:
        """The params whose value (or presence) is not the same in every run."""
        return {key: values for key, values in self.params.items() if len(set(values)) > 1}

    @property
    def equal_param_count(self) -> int:
        return len(self.params) - len(self.differing_params)

    def metric_deltas(self, key: str) -> tuple[float | None, ...]:
        """Each run's value of metric ``key`` minus the reference's (None for the reference itself, and where
        either value is missing or not finite)."""
        values = self.metrics[key]
        reference = values[0]
        return (None,) + tuple(_delta(value, reference) for value in values[1:])

    def table(self, all_params: bool = False) -> str:
        """The comparison as fixed-width text: params that differ (``all_params``: every param), then metrics."""
        names = [run.name for run in self.runs]
        short_ids = ["", *(run.short_id for run in self.runs)]
        shown = self.params if all_params else self.differing_params
        equal = self.equal_param_count
        reference = self.runs[0]
        lines = [f"{len(self.runs)} runs; metric deltas are relative to the first, {reference.name} "
                 f"({reference.short_id}).", ""]
        differ = len(self.differing_params)
        counts = f"{_count(differ, 'key')} differ{'s' if differ == 1 else ''}; {_count(equal, 'key')} equal"
        lines.append(f"params: {counts}" if all_params or not equal else f"params: {counts} (--all shows them)")
        if shown:
            rows = [[key, *(_param_cell(value) for value in values)] for key, values in shown.items()]
            lines += aligned([["key", *names], short_ids, *rows])
        lines += ["", f"metrics: {_count(len(self.metrics), 'key')} (latest values)"]
        if self.metrics:
            rows = [[key, *_metric_cells(values, self.metric_deltas(key))] for key, values in self.metrics.items()]
            lines += aligned([["metric", *names], short_ids, *rows])
        return "\n".join(lines)

    def to_dict(self, all_params: bool = False) -> dict:
        """The comparison as plain data for JSON: ``runs``, ``params`` (those that differ, or with
        ``all_params`` every one), ``params_equal`` (how many are equal everywhere) and ``metrics``; one value a
        run in each list, None where a run lacks the key or a metric is not finite (NaN, ±inf)."""
        shown = self.params if all_params else self.differing_params
        return {
            "runs": [{"run_id": run.run_id, "name": run.name, "experiment_id": run.experiment_id}
                     for run in self.runs],
            "params": {key: list(values) for key, values in shown.items()},
            "params_equal": self.equal_param_count,
            "metrics": {key: [value if value is not None and math.isfinite(value) else None for value in values]
                        for key, values in self.metrics.items()},
        }


def compare_runs(runs: Sequence[RunRecord]) -> RunComparison:
    """Line up the params and metrics of ``runs`` (at least two; the first is the reference)."""
    if len(runs) < 2:
        raise ValueError(f"a comparison needs at least two runs, got {len(runs)}")
    param_keys = sorted({key for run in runs for key in run.params}, key=natural_key)
    metric_keys = ordered_metric_keys(key for run in runs for key in run.metrics)
    return RunComparison(
        runs=tuple(runs),
        params={key: tuple(run.params.get(key) for run in runs) for key in param_keys},
        metrics={key: tuple(_as_float(run.metrics.get(key)) for run in runs) for key in metric_keys},
    )


def ordered_metric_keys(keys: Iterable[str]) -> list[str]:
    """Distinct metric keys: `COMPARE_FIRST` first (in their order), then the rest alphabetically."""
    distinct = set(keys)
    headline = [key for key in COMPARE_FIRST if key in distinct]
    return headline + sorted(distinct - set(headline))


def natural_key(key: str) -> tuple:
    """Sort key of a dotted param path in which list indices sort as numbers (``Training.2`` < ``Training.10``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split("."))


# ------------------------------------------------------------------------------------------ run references
def resolve_run_reference(reference: str, known: Mapping[str, str], store: str) -> str:
    """The one run ID of ``known`` (run ID -> run name) that ``reference`` names: the ID itself or its prefix.

    Raises:
        TrackingError: ``reference`` is not hex, shorter than `MIN_PREFIX_LENGTH`, matches no run, or matches
            several (the message lists them).
    """
    prefix = check_run_reference(reference)
    matches = sorted(run_id for run_id in known if run_id.startswith(prefix))
    if not matches:
        raise TrackingError(f"no run of {store} has an ID starting with '{reference}' ({_count(len(known), 'run')} "
                            "searched); `gravtrain ui` lists the runs and their IDs.")
    if len(matches) > 1:
        listed = [f"{run_id} ({known[run_id]})" for run_id in matches[:MAX_CANDIDATES_SHOWN]]
        more = len(matches) - len(listed)
        raise TrackingError(f"run ID prefix '{reference}' is ambiguous: it matches {len(matches)} runs: "
                            f"{', '.join(listed)}{f' and {more} more' if more else ''}; give more characters.")
    return matches[0]


def check_run_reference(reference: str) -> str:
    """``reference`` in lower case, once it has the shape of a run ID or of a prefix of one.

    Raises:
        TrackingError: it is not `MIN_PREFIX_LENGTH` to `RUN_ID_LENGTH` hex characters.
    """
    lowered = reference.strip().lower()
    if not _RUN_REFERENCE.fullmatch(lowered):
        raise TrackingError(f"'{reference}' is not a run ID: give a run's full ID or at least {MIN_PREFIX_LENGTH} "
                            f"of its first characters (hex digits, e.g. 3f2a9c1d).")
    return lowered


# ------------------------------------------------------------------------------------------- store access
def read_runs(store: str, references: Sequence[str], *, mirror_home=None, direct: bool = False) -> list[RunRecord]:
    """The runs of ``store`` (a directory or an MLflow URI) that ``references`` name, in the order given.

    A full run ID is read directly; prefixes are matched against every run of every experiment of the store
    (deleted ones included). A directory store is read through its local mirror (`gravtrain.stores.mirror`,
    in ``mirror_home``), brought up to date first, unless ``direct``.

    Raises:
        TrackingError: the store directory does not exist, a reference names no run or several, two references
            name the same run, or MLflow cannot read the store.
    """
    from mlflow.exceptions import MlflowException

    from gravtrain.stores.reader import store_client

    prefixes = [check_run_reference(reference) for reference in references]
    client = store_client(store, mirror_home=mirror_home, direct=direct)
    try:
        searched = _all_runs(client) if any(len(p) < RUN_ID_LENGTH for p in prefixes) else {}
        known = {run_id: run.info.run_name or "" for run_id, run in searched.items()}
        runs = []
        for reference, prefix in zip(references, prefixes):
            if len(prefix) == RUN_ID_LENGTH:
                runs.append(_get_run(client, prefix, store))
            else:
                runs.append(searched[resolve_run_reference(reference, known, store)])
    except MlflowException as exc:
        raise TrackingError(f"MLflow cannot read the runs of {store}: {exc.message}; if a crash damaged it, "
                            f"`gravtrain runs doctor {store}` finds the damage.") from exc
    records = [_run_record(run) for run in runs]
    _refuse_repeated_runs(records, references)
    logger.debug("comparing runs %s of %s", [record.run_id for record in records], client.tracking_uri)
    return records


def _all_runs(client) -> dict:
    """Every run of every experiment of the store (active and deleted), by run ID."""
    from mlflow.entities import ViewType

    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments(view_type=ViewType.ALL)]
    runs, page_token = {}, None
    while experiment_ids:
        page = client.search_runs(experiment_ids, run_view_type=ViewType.ALL, max_results=1000,
                                  page_token=page_token)
        runs.update((run.info.run_id, run) for run in page)
        page_token = page.token
        if not page_token:
            break
    return runs


def _get_run(client, run_id: str, store: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise TrackingError(f"no run {run_id} in {store}; `gravtrain ui` lists the runs and their IDs.") from None
        raise


def _run_record(run) -> RunRecord:
    return RunRecord(run_id=run.info.run_id, name=run.info.run_name or "", params=dict(run.data.params),
                     metrics=dict(run.data.metrics), experiment_id=run.info.experiment_id)


def _refuse_repeated_runs(records: Sequence[RunRecord], references: Sequence[str]) -> None:
    first_reference: dict[str, str] = {}
    for record, reference in zip(records, references):
        if record.run_id in first_reference:
            raise TrackingError(f"'{first_reference[record.run_id]}' and '{reference}' both name run "
                                f"{record.run_id}; name each run once.")
        first_reference[record.run_id] = reference


# ------------------------------------------------------------------------------------------------ cells
def _delta(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or not (math.isfinite(value) and math.isfinite(reference)):
        return None
    return value - reference


def _metric_cells(values: Sequence[float | None], deltas: Sequence[float | None]) -> list[str]:
    cells = []
    for value, delta in zip(values, deltas):
        if value is None:
            cells.append(MISSING)
        elif delta is None:
            cells.append(format_number(value))
        else:
            cells.append(f"{format_number(value)} ({delta:+.4g})")
    return cells


def _param_cell(value: str | None) -> str:
    if value is None:
        return MISSING
    text = value if value != "" else '""'
    return text if len(text) <= MAX_CELL_WIDTH else text[:MAX_CELL_WIDTH - 3] + "..."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _as_float(value) -> float | None:
    return None if value is None else float(value)


