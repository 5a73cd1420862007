"""The dry run: the exact set of model instances a sweep may train, stated so that nothing is left to the
reader: each swept key's space (or every grid point), their count, the number of training runs, and the
parameter counts of the smallest and largest architecture in the space. `gravtrain tune --dry-run` prints it;
every sweep logs it on its parent run.
"""

from __future__ import annotations

import itertools
import math
import os

from gravtrain.config.validate import dotted
from gravtrain.tune.plan import SweepPlan
from gravtrain.tune.spaces import yaml_text

#: With up to this many Architecture keys swept, every combination of their ends is built to find the smallest
#: and largest model; with more, only all-lowest and all-highest.
MAX_ARCHITECTURE_KEYS_COMBINED = 4


def dry_run_text(plan: SweepPlan) -> str:
    sweep, header = plan.sweep, plan.sweep.header
    direction = "maximize" if header.objective.maximize else "minimize"
    lines = [
        f"Sweep '{header.name}' ({sweep.path}) of model '{header.model}', base config "
        f"{os.path.relpath(plan.base_file)}"
        + (f" with {' '.join('--set ' + o for o in plan.overrides)}" if plan.overrides else ""),
        f"sampler {header.sampler}, seed {header.seed}, pruner {header.pruner}"
        + (f" from epoch {header.pruner_warmup_epochs + 1}" if header.pruner != "none" and header.pruner_warmup_epochs
           else "") + f"; objective: {direction} "
        f"{header.objective.metric}" + (f" (mean of {header.repeats} repeats)" if header.repeats > 1 else ""),
        f"The sweep sets {len(plan.keys)} key(s); every other key is as in the base config:",
    ]
    width = max(len(swept.name) for swept in plan.keys)
    lines += [f"  {swept.name.ljust(width)}  {swept.space.describe()}" for swept in plan.keys]
    finite = [swept for swept in plan.keys if swept.space.finite]
    if header.sampler == "grid":
        points = plan.grid_points()
        lines.append(f"Model instances: the {len(points)} grid points, each trained once:")
        digits = len(str(len(points)))
        lines += [f"  {str(i + 1).rjust(digits)}. " + ", ".join(f"{dotted(p)}={yaml_text(v)}" for p, v in point.items())
                  for i, point in enumerate(points)]
    elif len(finite) == len(plan.keys):
        count = math.prod(int(swept.space.size()) for swept in plan.keys)
        lines.append(f"Model instances: any of the {count} combinations of the values above; {sweep.n_trials} "
                     f"of them are sampled ({header.sampler}).")
    else:
        continuous = ", ".join(swept.name for swept in plan.keys if not swept.space.finite)
        lines.append(f"Model instances: {sweep.n_trials} points sampled ({header.sampler}) from the spaces above; "
                     f"{continuous} {'is' if continuous.count(',') == 0 else 'are'} continuous, so any value in "
                     f"range may be trained.")
    repeats = f"{header.repeats} repeat{'s' if header.repeats != 1 else ''}"
    seeds = _seeds(plan)
    lines.append(f"Training runs: {sweep.n_trials} trials x {repeats} = {sweep.n_trainings}"
                 + (f" (General.seed {seeds})" if header.repeats > 1 else ""))
    lines += _model_sizes(plan)
    if plan.warnings:
        lines.append("Warning: some points of the space are no valid config; their trials fail (recorded with the "
                     "reason) and the sweep goes on:")
        lines += [f"  {warning}" for warning in plan.warnings]
    return "\n".join(lines) + "\n"


def _seeds(plan: SweepPlan) -> str:
    base = plan.base_config.General.seed
    return ", ".join(str(base + r) for r in range(plan.sweep.header.repeats))


def _model_sizes(plan: SweepPlan) -> list[str]:
    """Build the smallest and largest architecture of the space; their parameter counts."""
    from gravtrain.data import FeatureStats
    from gravtrain.model import build_model
    from gravtrain.tracking import store_model_fetcher

    architecture = [swept for swept in plan.keys if swept.path[0] == "Architecture"]
    first = plan.first_values()

    def size(point: dict) -> int:
        import keras

        config = plan.concrete_config(point)
        model = build_model(config, FeatureStats.neutral(), fetch=store_model_fetcher(config.Tracking))
        count = int(model.count_params())
        keras.backend.clear_session()
        return count

    if not architecture:
        return [f"Model: {size(first):,} parameters (no Architecture key is swept: every trial builds it)"]

    def ends_of(swept) -> tuple:
        """The values of a key that give its smallest and largest model: a number's lowest and highest; for
        choices of other values (lists of blocks, names) the two of its choices whose models, built with the
        other keys at their first values, have the fewest and the most parameters."""
        values = swept.space.ends()
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return swept.space.lowest_and_highest()
        ranked = sorted(values, key=lambda value: size({**first, swept.path: value}))
        return ranked[0], ranked[-1]

    ends = [ends_of(swept) for swept in architecture]
    if len(architecture) <= MAX_ARCHITECTURE_KEYS_COMBINED:
        combos = list(itertools.product(*ends))
    else:
        combos = [tuple(e[0] for e in ends), tuple(e[1] for e in ends)]
    sized = []
    unique = {yaml_text(list(combo)): combo for combo in combos}  # choices may be lists: compare their text
    for combo in unique.values():
        point = dict(first)
        point.update({swept.path: value for swept, value in zip(architecture, combo)})
        sized.append((size(point), combo))
    sized.sort(key=lambda item: item[0])

    def named(combo) -> str:
        return ", ".join(f"{swept.name}={yaml_text(value)}" for swept, value in zip(architecture, combo))

    return [f"Smallest model: {sized[0][0]:,} parameters ({named(sized[0][1])})",
            f"Largest model:  {sized[-1][0]:,} parameters ({named(sized[-1][1])})"]
