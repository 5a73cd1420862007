"""The names of the tags gravtrain puts on runs and reads back (`runs list`, the UI's views), in one place.

Provenance tags (the config hashes, versions, git) are `gravtrain.tracking.provenance`'s.
"""

from __future__ import annotations

#: The stage a run is in, or ended in (its ``name``).
STAGE_TAG = "gravtrain.stage"
#: A sweep's name, on its parent run and on every trial's run.
SWEEP_TAG = "gravtrain.sweep"
#: A trial's number in its study, on the trial's runs.
TRIAL_TAG = "gravtrain.trial"
#: ``parent`` on a sweep's parent run.
SWEEP_ROLE_TAG = "gravtrain.sweep_role"
PARENT_ROLE = "parent"
