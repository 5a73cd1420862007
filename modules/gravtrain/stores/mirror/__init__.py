"""A local, incremental mirror of an MLflow directory store, so that a store on a slow mount (sshfs) browses fast.

Why: MLflow's file store keeps one small file per param, tag and metric, and its server opens them one at a time
for every page it serves. On a mount with a 10 ms round trip, listing 50 runs of 150 params then takes minutes.
`StoreMirror.refresh` reads the store's small files with many requests in flight (sshfs serves them concurrently)
into a local directory store that the local MLflow server reads instead; only new or changed runs are read again.

What the mirror holds, below ``<mirror home>/store``: every experiment's and run's files in MLflow's layout
(``meta.yaml``, ``params/``, ``metrics/``, ``tags/``, ``inputs/``, ...) except the artifacts, which stay where
they are and are read from the source when the UI asks for them. It differs from the source in two ways only:

- **Artifact locations.** A file store records absolute ``file://`` artifact locations (``artifact_uri`` of a
  run, ``artifact_location`` of an experiment). When the store is read at another path than the one it was
  written at (a cluster's ``mlruns`` mounted on a laptop), the mirror's copies point at the path it is read at,
  so every artifact is served from where it really is. A location elsewhere (a custom artifact root) is kept.
- **Experiment tags for the UI.** An experiment holding gravtrain runs (a ``gravtrain.*`` tag) gets, in the
  mirror, ``mlflow.experimentKind: custom_model_development`` (MLflow 3's UI then opens it on the runs table
  rather than as a GenAI project; `gravtrain.tracking.run.EXPERIMENT_KIND_TAGS`) and a runs-table view,
  ``mlflow.sharedViewState.gravtrain``, whose columns are the stage and the headline metrics its runs have,
  and whose chart view opens on the physics (`views.runs_table_view`), opened by an address ending in
  ``?viewStateShareKey=gravtrain``. A tag the source experiment has itself is kept as it is.

The source is only ever listed and read, never written. A new run appears in the mirror complete or not at all
(it is assembled in ``<mirror home>/staging`` and renamed into place); a changed file is replaced atomically, so
the server never reads half a file.

Incremental: ``<mirror home>/state.json`` records the size and modification time (whole seconds, as sshfs gives
them) of every mirrored file, and for each run whether it had ended (FINISHED, FAILED or KILLED). A refresh lists
every experiment and run directory; it descends into a run only if the run is new, still running, or its
``meta.yaml`` or its ``tags`` folder changed. An ended run that gravtrain packed when it ended
(`gravtrain.tracking.run_pack`) is read from its pack, two files instead of about 190, when the pack is current.
Every `DEEP_CHECK_EVERY`-th refresh of a `MirrorRefresher` (and ``refresh(deep=True)``) looks into every run, which
finds a tag overwritten in an ended run. Runs and experiments gone from the source are removed from the mirror.

The mirror is a cache: deleting its home loses nothing, and a mirror written by another version of this module
is rebuilt from scratch.

The package, by concern: `store_mirror` (`StoreMirror`: the refresh, copying, bookkeeping and locking), `scan`
(listing and reading the source), `layout` (the store's folders), `relocation` (artifact locations), `views` (the
UI's experiment tags), `state` (``state.json``) and `refresher` (the background thread of ``gravtrain ui``).
"""

from gravtrain.stores.mirror.layout import ARTIFACTS, RUN_FOLDERS
from gravtrain.stores.mirror.refresher import BUSY_FACTOR, DEEP_CHECK_EVERY, MirrorRefresher
from gravtrain.stores.mirror.scan import MirrorError
from gravtrain.stores.mirror.state import MIRROR_FORMAT
from gravtrain.stores.mirror.store_mirror import (
    MIRROR_WORKERS, RefreshReport, StoreMirror, default_mirror_home, gravtrain_cache, mirrored_store_uri,
)
from gravtrain.stores.mirror.views import SHARED_VIEW_TAG_PREFIX, VIEW_SHARE_KEY, runs_table_view

__all__ = [
    "ARTIFACTS", "BUSY_FACTOR", "DEEP_CHECK_EVERY", "MIRROR_FORMAT", "MIRROR_WORKERS", "MirrorError", "MirrorRefresher",
    "RUN_FOLDERS", "RefreshReport", "SHARED_VIEW_TAG_PREFIX", "StoreMirror", "VIEW_SHARE_KEY", "default_mirror_home",
    "gravtrain_cache", "mirrored_store_uri", "runs_table_view",
]
