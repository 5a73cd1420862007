"""A learning peer: the toy config's model trained by an independent stack, scored by gravtrain's own code.

Is the toy run's plateau (efficiency about 0.78, fake rate about 0.18 above 10 GeV) the ceiling of the toy, of
the recipe, or a defect in gravtrain? This script trains the same network on the same events twice, once with
gravtrain and once with a PyTorch peer, and scores both after every epoch with
``gravtrain.evaluation.score_predictions`` (``gravtrain.inference.evaluate_predictions`` as ``gravtrain.train``
calls it for its ``physics/*`` metrics, with the config's ``Evaluation`` thresholds), so a gap between them is
the stack's, not the scoring's. The peer's process imports TensorFlow and Keras with gravtrain's data and
evaluation modules, and runs no TensorFlow op.

What both share: the events (``gravtrain.data.load_event_sets(config.Data)``), the feature statistics
(``FeatureStats.from_store``, asinh-compressed energy then standardised), the batches (``HitBudgetBatcher``
with each stage's batch_size, the run's seed and the same epoch numbers: whole events, never mixed), the
stages, epochs and learning rates, the optimiser (``Optimizer``: Nadam with its epsilon and Keras 3's momentum
schedule beta_1 (1 - 0.5 * 0.96^t), which is torch's NAdam with ``momentum_decay=1``; and Keras' ``clipnorm``,
which clips each weight's gradient on its own, so the peer clips each parameter with ``clip_grad_norm_``), no
update from a step whose loss or gradients are not finite (gravtrain then stops the run; the peer counts it in
``skipped_steps`` and goes on), and the threads (gravtrain leaves TensorFlow's at its default, one per logical
CPU; the peer calls ``torch.set_num_threads`` with that number).

The peer's network mirrors ``gravtrain.model.build_model`` block by block (``Architecture``, ``DenseOptions``):
the hit and track embeddings (chosen per row by ``is_track``), the cluster-space seed (the standardised x, y,
z), per GravNet iteration the ``dense_pre_gravnet`` blocks, GravNet on [seed, h] with its k, S and P, the
GravNet-space regulariser (``Architecture.gravnet_space_regularizer``, the same per-event formula),
distance-weighted message passing over GravNet's graph (self included, weights exp(-10 d^2), gradients to the
space through d^2), the ``dense_post_message_passing`` blocks, a batch norm after each of these, the
concatenation of the seed and every iteration, ``dense_final`` and the heads beta = sigmoid, ccoords (linear),
energy_corr = 1 + elu (zero start), the two energy quantiles and pid (softmax); dist is 1
(``fix_distance_scale``). Dense layers start as Keras' do (Glorot-uniform, zero bias), GravNet's space as the
identity on the seed plus N(0, 0.01) noise, as gravtrain's. Its loss: the attraction, repulsion and beta
("coward") terms of ``object_condensation.pytorch.losses.condensation_loss`` called once per event (the mean
over the events, as gravtrain's), with gravtrain's charge q = arctanh(beta/1.01)^2 + q_min (beta/1.01 goes in,
and the beta term is mapped back to 1 - beta_alpha) and the spectator weight 1 - t_spectator as the package's
``weights``; the noise term, the mean beta of the event's noise hits, as the package's but 0 for an event
without noise; scaled by ``beta_loss_scale`` and ``noise_scale``; plus gravtrain's payload terms (energy,
energy quantiles, classification, beta-weighted over the batch) with the same weights.

Where the peer differs, and why:

- GravNet is PyTorch Geometric's ``GravNetConv`` (kNN by torch-cluster), followed by a relu as gravtrain's
  output: its kNN counts the hit itself, so it gets k = n + 1 (the n others gravtrain gathers, plus itself in
  the mean and max); it propagates lin_h(x) with no activation (gravtrain: elu), its output is
  W1 x + W2 [mean, max] + b (gravtrain: W [mean - f, max - f, x] + b), and its space has a bias.
  GravNetConv does not return its graph: the peer finds it again with torch-cluster in the same space for the
  message passing and the regulariser.
- Batch norm is PyTorch's plain ``BatchNorm1d`` (batch statistics with gradients in training, running ones
  in inference) instead of gravtrain's gooey batch norm (moving statistics under stop-gradient, with its
  ``BatchNormOptions``).
- The condensation terms are the OC package's: an object's centre is its condensation point x_alpha
  (gravtrain mixes in the beta-weighted mean by ``use_average_cc_pos``, 0.9999 in the toy config); alpha is
  the hit of highest q whatever its weight, so a track or a spectator can be it (gravtrain never makes a track
  the condensation point of an object with a calorimeter hit, and a spectator's q is 0 there); distances carry
  no d^2 + 1e-4 scale. Only the hinge potential and the 'object' repulsion normalisation exist there.
- ``position`` and ``time`` heads are left out (their weights are 0 in the toy config).

A setting the peer cannot mirror (a pre-model, fill space, layer norm, dropout, kernel regularisers, learned
batch norm, another potential or normalisation, a beta regulariser, position or time weights, frozen layers,
early stopping, several devices) stops the script with a message.

Per epoch and stack: the training seconds of the epoch (its batches: data, forward, backward, update; not the
validation), hits/s, the mean training loss (each stack's own loss) and every physics metric on the validation
events (efficiency, fake rate, response, resolution above ``Evaluation.energy_threshold`` and over all
energies). gravtrain's side is ``gravtrain.train`` with tracking off and ``Plotting.physics_frequency=1``
(``epoch/seconds`` also holds a checkpoint every ``Plotting.plot_frequency`` steps, some 0.1 s). Each run is a
fresh process, the stacks alternating A B, B A over the seeds. The peer's process runs with
``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: torch's OpenMP threads otherwise spin at every
barrier, and on a busy 2-core machine (load 5, 2026-12-07) one GravNetConv step of 2,700 hits took 1.1 s
with 2 spinning threads against 0.05 s with 2 passive ones or 1 thread.

Usage::

    python benchmarks/peer_training.py [--config configs/toy.yaml] [--set KEY=VALUE ...] [--seeds 42,1]
        [--stacks gravtrain,peer] [--out benchmarks/results/peer_training.json]
    python benchmarks/peer_training.py --smoke   # 12 events, one epoch: about a minute

The peer is not a dependency of gravtrain and this script installs nothing: docs/benchmarks.md says how to install
its ``torch``, ``torch_geometric``, ``torch-cluster`` and ``object-condensation``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from learning_curve import json_safe  # noqa: E402
from peer_model import build_peer, peer_loss, peer_unsupported  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "toy.yaml"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "peer_training.json"
STACKS = ("gravtrain", "peer")
#: The peer's modules, and the distributions that provide them (for the versions written to the JSON).
PEER_MODULES = {"torch": "torch", "torch_geometric": "torch_geometric", "torch_cluster": "torch-cluster",
                "object_condensation": "object-condensation"}
PEER_INSTALL = ("pip install torch --index-url https://download.pytorch.org/whl/cpu; "
                "pip install torch_geometric==2.7.0 object-condensation==1.1.0; "
                "pip install --no-build-isolation torch-cluster")
#: A few events, one epoch of one stage: seconds.
SMOKE_OVERRIDES = ("Data.toy.n_train_events=12", "Data.toy.n_val_events=6",
                   "Training=[{name: smoke, epochs: 1, batch_size: 3000, learning_rate: 1e-3}]")
#: The columns of the printed table (every physics metric is in the JSON).
TABLE = ("efficiency", "fake_rate", "response")

logger = logging.getLogger("peer_training")


def default_threads() -> int:
    """TensorFlow's default intra-op threads, which gravtrain keeps: one per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def stage_of_epochs(config) -> list[dict]:
    """The stage of each epoch, in order: its name, learning rate and batch size."""
    return [{"stage": config.stage_name(index), "learning_rate": stage.learning_rate, "batch_size": stage.batch_size}
            for index, stage in enumerate(config.Training) for _ in range(stage.epochs)]


# ------------------------------------------------------------------------------------------------ gravtrain


def run_gravtrain(config_path: Path, overrides: list[str], workdir: Path) -> dict:
    """``gravtrain.train`` with tracking off and physics every epoch; its epochs from the recorded curves."""
    from gravtrain.config import load_config
    from gravtrain.training import train

    overrides = [*overrides, "Plotting.physics_frequency=1", f"Tracking.checkpoint_dir={workdir / 'checkpoints'}"]
    config = load_config(config_path, overrides)
    result = train(config_path, overrides, tracking=False)
    curves = result.curves
    epochs = []
    for number, stage in enumerate(stage_of_epochs(config), start=1):
        def at(name):
            steps, values = curves.get(name, ([], []))
            return dict(zip(steps, values)).get(number, math.nan)

        seconds, hits_per_second = at("epoch/seconds"), at("epoch/hits_per_second")
        physics = {name[len("physics/"):]: at(name) for name in curves if name.startswith("physics/")}
        epochs.append({"epoch": number, **stage, "seconds": seconds, "hits": seconds * hits_per_second,
                       "hits_per_second": hits_per_second, "train_loss": at("epoch/objective"), **physics})
    return {"epochs": epochs, "seconds": result.seconds}


# ------------------------------------------------------------------------------------------------ the peer


def run_peer(config_path: Path, overrides: list[str], threads: int) -> dict:
    """Train the peer on gravtrain's events and batches; score it with gravtrain's code after every epoch."""
    import torch

    from gravtrain.config import load_config
    from gravtrain.data import FEATURE_NAMES, FeatureStats, HitBudgetBatcher, load_event_sets
    from gravtrain.evaluation import score_predictions

    started = time.perf_counter()
    config = load_config(config_path, overrides)
    unsupported = peer_unsupported(config)
    if unsupported:
        raise SystemExit(f"the peer cannot mirror {', '.join(unsupported)} of this config")
    torch.set_num_threads(threads)
    torch.manual_seed(config.General.seed)
    train_store, val_store = load_event_sets(config.Data)
    stats = FeatureStats.from_store(train_store)
    positions = [FEATURE_NAMES.index(name) for name in ("x", "y", "z")]
    track_column = FEATURE_NAMES.index("is_track")
    network = build_peer(config, len(FEATURE_NAMES), positions)
    optimizer_options = config.Optimizer
    if optimizer_options.name != "nadam" or optimizer_options.weight_decay:
        raise SystemExit(f"the peer mirrors nadam without weight decay, not {optimizer_options.name}")
    # Keras 3's Nadam: momentum u_t = beta_1 (1 - 0.5 * 0.96^t); torch's: beta_1 (1 - 0.5 * 0.96^(psi t)).
    optimizer = torch.optim.NAdam(network.parameters(), lr=config.Training[0].learning_rate,
                                  eps=optimizer_options.epsilon, momentum_decay=1.0)
    parameters = [parameter for parameter in network.parameters() if parameter.requires_grad]

    def tensors(batch):
        features = batch["features"]
        splits = batch["row_splits"].astype(np.int64)
        event = torch.from_numpy(np.repeat(np.arange(len(splits) - 1), np.diff(splits)))
        inputs = (torch.from_numpy(stats.standardise(features)), torch.from_numpy(features[:, track_column].copy()),
                  torch.from_numpy(features[:, positions].copy()), event)
        truth = {name: torch.from_numpy(np.asarray(value)) for name, value in batch.items()
                 if name not in ("features", "row_splits")}
        return inputs, truth, splits

    def score() -> dict:
        network.eval()
        budget = max(100_000, int(val_store.event_sizes.max(initial=1)))  # as gravtrain's evaluation batches
        parts: dict[str, list] = {}
        with torch.no_grad():
            for batch in HitBudgetBatcher(val_store, budget, shuffle=False).numpy_batches(epoch=0):
                predictions, _ = network(*tensors(batch)[0])
                for name in ("beta", "ccoords", "dist", "energy_corr", "pid"):
                    parts.setdefault(name, []).append(predictions[name].numpy())
        network.train()
        predictions = {name: np.concatenate(values) for name, values in parts.items()}
        return score_predictions(predictions, val_store, config.Evaluation, figures=False).metrics.to_dict()

    epochs, skipped_steps = [], 0
    network.train()
    for number, stage in enumerate(stage_of_epochs(config), start=1):
        for group in optimizer.param_groups:
            group["lr"] = stage["learning_rate"]
        batcher = HitBudgetBatcher(train_store, stage["batch_size"], seed=config.General.seed, shuffle=True)
        seconds = hits = losses = n_batches = 0.0
        tick = time.perf_counter()
        for batch in batcher.numpy_batches(number - 1):
            inputs, truth, splits = tensors(batch)
            predictions, regularizers = network(*inputs)
            total, _ = peer_loss(predictions, truth, splits, config.LossOptions)
            objective = total + config.Architecture.gravnet_space_regularizer * sum(regularizers)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
            if torch.isfinite(objective) and all(bool(torch.isfinite(gradient).all()) for gradient in gradients):
                for parameter in parameters:  # Keras' clipnorm: each weight's gradient on its own
                    if parameter.grad is not None:
                        torch.nn.utils.clip_grad_norm_(parameter, optimizer_options.clipnorm)
                optimizer.step()
                losses += float(objective)
            else:
                skipped_steps += 1
            now = time.perf_counter()
            seconds += now - tick
            tick = now
            hits += len(batch["features"])
            n_batches += 1
        physics = score()
        epochs.append({"epoch": number, **stage, "seconds": seconds, "hits": hits,
                       "hits_per_second": hits / seconds if seconds else math.nan,
                       "train_loss": losses / max(n_batches - skipped_steps, 1), **physics})
        logger.info("peer epoch %d: %.1f s, %.0f hits/s, efficiency %.3f, fake rate %.3f, response %.3f", number,
                    seconds, epochs[-1]["hits_per_second"], physics["efficiency"], physics["fake_rate"],
                    physics["response"])
    return {"epochs": epochs, "seconds": time.perf_counter() - started, "skipped_steps": skipped_steps}


# ------------------------------------------------------------------------------------------------ the driver


def peer_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in PEER_MODULES)


def peer_versions() -> dict:
    versions = {}
    for distribution in PEER_MODULES.values():
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions


def run_child(stack: str, config: Path, overrides: list[str], seed: int, threads: int, workdir: Path) -> dict:
    """One training of ``stack`` in a fresh process (in ``workdir``), its result read back from JSON."""
    out, log = workdir / f"{stack}-{seed}.json", workdir / f"{stack}-{seed}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", stack, "--config", str(config),
               "--threads", str(threads), "--child-out", str(out)]
    for override in [*overrides, f"General.seed={seed}"]:
        command += ["--set", override]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if stack == "peer":  # torch's OpenMP threads otherwise spin at every barrier (module docstring)
        environment.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logger.info("training %s, seed %d (log: %s)", stack, seed, log)
    with open(log, "w") as log_file:
        completed = subprocess.run(command, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"{stack} (seed {seed}) failed:\n{log.read_text()[-3000:]}")
    return json.loads(out.read_text())


def table(results: dict) -> str:
    """Per run and epoch: seconds, hits/s and the headline metrics above the energy threshold."""
    def number(epoch, name):
        value = epoch.get(name)
        return math.nan if value is None else value  # NaN is written to the JSON as null

    lines = [f"{'stack':>9} {'seed':>5} {'epoch':>5} {'stage':>8} {'seconds':>8} {'hits/s':>8} "
             + " ".join(f"{name:>10}" for name in TABLE)]
    for run in results["runs"]:
        for epoch in run["epochs"]:
            lines.append(f"{run['stack']:>9} {run['seed']:>5} {epoch['epoch']:>5} {str(epoch['stage'])[:8]:>8} "
                         f"{number(epoch, 'seconds'):8.1f} {number(epoch, 'hits_per_second'):8.0f} "
                         + " ".join(f"{number(epoch, name):10.3f}" for name in TABLE))
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as on the command line (repeatable)")
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds (default: General.seed)")
    parser.add_argument("--stacks", default=None,
                        help="comma-separated, of gravtrain, peer (default: both, or gravtrain alone without the peer)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="the peer's torch threads (default: what gravtrain's TensorFlow uses)")
    parser.add_argument("--smoke", action="store_true", help="12 events, one epoch: a quick check")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of every epoch of every run")
    parser.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.overrides = [*SMOKE_OVERRIDES, *args.overrides]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config_path = args.config.resolve()
    if args.child:
        if args.child == "gravtrain":
            result = run_gravtrain(config_path, args.overrides, Path.cwd())
        else:
            result = run_peer(config_path, args.overrides, args.threads)
        args.child_out.write_text(json.dumps(json_safe(result)))
        return 0

    from gravtrain.config import load_config

    config = load_config(config_path, args.overrides)  # a config mistake stops here, before any training
    if args.stacks:
        stacks = tuple(args.stacks.split(","))
        unknown = set(stacks) - set(STACKS)
        if unknown:
            raise SystemExit(f"unknown --stacks {', '.join(sorted(unknown))}; valid: {', '.join(STACKS)}")
    elif peer_available():
        stacks = STACKS
    else:
        stacks = ("gravtrain",)
        logger.info("torch, torch_geometric, torch-cluster or object-condensation is not installed: measuring "
                    "gravtrain alone (install the peer with: %s)", PEER_INSTALL)
    if "peer" in stacks and peer_unsupported(config):
        raise SystemExit(f"the peer cannot mirror {', '.join(peer_unsupported(config))} of this config")
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [config.General.seed]
    results = {"benchmark": "peer_training", "config": str(config_path), "overrides": args.overrides,
               "smoke": args.smoke, "stacks": list(stacks), "seeds": seeds, "threads": args.threads,
               "energy_threshold": config.Evaluation.energy_threshold, "machine": machine(),
               "peer_versions": peer_versions() if "peer" in stacks else None,
               "peer_omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "runs": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="peer_training-") as workdir:
        for position, seed in enumerate(seeds):
            order = stacks if position % 2 == 0 else tuple(reversed(stacks))  # A B, B A, ...
            for stack in order:
                started = datetime.datetime.now().isoformat(timespec="seconds")
                run = run_child(stack, config_path, args.overrides, seed, args.threads, Path(workdir))
                results["runs"].append({"stack": stack, "seed": seed, "started": started, **run})
                args.out.write_text(json.dumps(json_safe(results), indent=1) + "\n")
    results["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(json_safe(results), indent=1) + "\n")
    print(f"above {config.Evaluation.energy_threshold:g} GeV, validation events; seconds and hits/s of each "
          f"epoch's training\n{table(results)}\nwrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
