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

The peer is not a dependency of gravtrain and this script installs nothing: see the README's "Benchmarks"
section for ``torch``, ``torch_geometric``, ``torch-cluster`` and ``object-condensation``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_curve import json_safe  # noqa: E402

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


def peer_unsupported(config) -> list[str]:
    """The settings of ``config`` the peer cannot mirror (module docstring); empty when it can."""
    general, architecture, dense, loss = config.General, config.Architecture, config.DenseOptions, config.LossOptions
    checks = {
        "General.pre-model-type": general.pre_model_type != "none", "General.use_fill_space": general.use_fill_space,
        "General.use_layer_normalization": general.use_layer_normalization, "General.devices": general.devices != 1,
        "General.model": general.model != "object-condensation", "DenseOptions.dropout": dense.dropout > 0,
        "DenseOptions.kernel_regularizer": dense.kernel_regularizer != "none",
        "Architecture.fix_distance_scale": not architecture.fix_distance_scale,
        "BatchNormOptions.learn": config.BatchNormOptions.learn,
        "LossOptions.oc_implementation": loss.oc_implementation != "hinge",
        "LossOptions.repulsion_normalization": loss.repulsion_normalization != "object",
    }
    for name in ("too_much_beta_scale", "beta_push", "position_loss_weight", "timing_loss_weight"):
        checks[f"LossOptions.{name}"] = getattr(loss, name) > 0
    for index, stage in enumerate(config.Training):
        checks[f"Training.{index}.freeze"] = bool(stage.freeze)
        checks[f"Training.{index}.early_stopping / stop_below"] = bool(stage.early_stopping or stage.stop_below)
        checks[f"Training.{index}.LossOptions"] = any(value is not None for value in
                                                       dataclasses.asdict(stage.LossOptions).values())
    return [name for name, unsupported in checks.items() if unsupported]


def build_peer(config, n_features: int, position_columns: list[int]):
    """The peer network of ``config`` (module docstring), freshly initialised as Keras would."""
    import torch
    from torch import nn
    from torch_cluster import knn
    from torch_geometric.nn import GravNetConv
    from torch_geometric.utils import scatter

    activations = {"elu": nn.ELU, "relu": nn.ReLU, "selu": nn.SELU, "gelu": nn.GELU, "silu": nn.SiLU,
                   "swish": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
                   "leaky_relu": lambda: nn.LeakyReLU(0.2), "linear": nn.Identity}
    activation = activations[config.DenseOptions.activation]
    architecture = config.Architecture
    n_coordinates = architecture.n_cluster_space_coordinates

    def dense_blocks(width, blocks):
        layers = []
        for block in blocks:
            layers += [nn.Linear(width, block.n), activation()]
            width = block.n
        return nn.Sequential(*layers), width

    def space_regularizer(d2, target, source, positions, batch):
        """gravtrain's GravNetSpaceRegularizer over the graph's pairs without self, per event then averaged."""
        pair = target != source
        d2, target, source = d2[pair], target[pair], source[pair]
        p2 = (positions[target] - positions[source]).square().sum(-1)
        event = batch[target]
        n_events = int(batch.max()) + 1 if len(batch) else 0
        count = scatter(torch.ones_like(d2), event, dim_size=n_events, reduce="sum")
        g_mean = scatter(d2, event, dim_size=n_events, reduce="sum") / count.clamp(min=1)
        p_mean = scatter(p2, event, dim_size=n_events, reduce="sum") / count.clamp(min=1)
        deviation = (d2 / (g_mean[event] + 1e-6) - p2 / (p_mean[event] + 1e-6)).square()
        per_event = scatter(deviation, event, dim_size=n_events, reduce="sum") / count.clamp(min=1)
        has_pairs = count > 0
        return per_event[has_pairs].mean() if has_pairs.any() else d2.sum() * 0

    class Iteration(nn.Module):
        def __init__(self, width, block):
            super().__init__()
            self.k = block.n + 1  # torch-cluster counts the hit itself
            self.dense_pre, width = dense_blocks(width, architecture.dense_pre_gravnet)
            self.norm_pre = nn.BatchNorm1d(width)
            self.gravnet = GravNetConv(n_coordinates + width, block.n_filters, architecture.n_gravnet_space_coordinates,
                                       block.n_propagate, k=self.k)
            self.norm_gravnet = nn.BatchNorm1d(block.n_filters)
            self.transforms, width = nn.ModuleList(), block.n_filters
            message_width = width
            for message_block in architecture.message_passing:
                self.transforms.append(nn.Linear(message_width, message_block.n))
                message_width = 2 * message_block.n
                width += 2 * message_block.n
            self.act = activation()
            self.norm_message = nn.BatchNorm1d(width) if self.transforms else nn.Identity()
            self.dense_post, width = dense_blocks(width, architecture.dense_post_message_passing)
            self.norm_post = nn.BatchNorm1d(width)
            self.width = width

        def forward(self, h, seed, positions, batch):
            h = self.norm_pre(self.dense_pre(h))
            x = torch.cat([seed, h], dim=-1)
            out = torch.relu(self.gravnet(x, batch))
            space = self.gravnet.lin_s(x)
            with torch.no_grad():  # GravNetConv's graph: for each hit (target) its k nearest, itself included
                target, source = knn(space, space, self.k, batch, batch)
            d2 = (space[target] - space[source]).square().sum(-1)
            regularizer = space_regularizer(d2, target, source, positions, batch)
            out = self.norm_gravnet(out)
            if self.transforms:
                weight, hidden, messages = torch.exp(-10.0 * d2)[:, None], out, []
                for transform in self.transforms:
                    g = self.act(transform(hidden))
                    weighted = weight * g[source]
                    mean = scatter(weighted, target, dim=0, dim_size=len(g), reduce="mean")
                    maximum = scatter(weighted, target, dim=0, dim_size=len(g), reduce="max")
                    hidden = torch.cat([mean - g, maximum - g], dim=-1)
                    messages.append(hidden)
                out = self.norm_message(torch.cat(messages + [out], dim=-1))
            return self.norm_post(self.dense_post(out)), regularizer

    class PeerNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.hit_embedding = nn.Linear(n_features, architecture.n_embedding)
            self.track_embedding = nn.Linear(n_features, architecture.n_embedding)
            self.act = activation()
            self.norm_embedding = nn.BatchNorm1d(architecture.n_embedding)
            self.seed_projection = (nn.Linear(n_features, n_coordinates - len(position_columns))
                                    if n_coordinates > len(position_columns) else None)
            self.iterations, width = nn.ModuleList(), architecture.n_embedding
            for block in architecture.gravnet:
                self.iterations.append(Iteration(width, block))
                width = self.iterations[-1].width
            self.dense_final, width = dense_blocks(n_coordinates + sum(i.width for i in self.iterations),
                                                   architecture.dense_final)
            self.norm_final = nn.BatchNorm1d(width)
            self.heads = nn.ModuleDict({"beta": nn.Linear(width, 1), "ccoords": nn.Linear(width, n_coordinates),
                                        "energy_corr": nn.Linear(width, 1), "energy_quantiles": nn.Linear(width, 2),
                                        "pid": nn.Linear(width, 6)})

        def forward(self, z, is_track, positions, batch):
            seed = z[:, position_columns[:n_coordinates]]
            if self.seed_projection is not None:
                seed = torch.cat([seed, self.seed_projection(z)], dim=-1)
            h = torch.where(is_track[:, None] > 0.5, self.act(self.track_embedding(z)),
                            self.act(self.hit_embedding(z)))
            h, kept, regularizers = self.norm_embedding(h), [seed], []
            for iteration in self.iterations:
                h, regularizer = iteration(h, seed, positions, batch)
                kept.append(h)
                regularizers.append(regularizer)
            f = self.norm_final(self.dense_final(torch.cat(kept, dim=-1)))
            z_heads = {name: head(f) for name, head in self.heads.items()}
            beta = torch.sigmoid(z_heads["beta"])
            return {"beta": beta, "ccoords": z_heads["ccoords"], "dist": torch.ones_like(beta),
                    "energy_corr": 1.0 + nn.functional.elu(z_heads["energy_corr"]),
                    "energy_low_quantile": z_heads["energy_quantiles"][:, :1],
                    "energy_high_quantile": z_heads["energy_quantiles"][:, 1:],
                    "pid": torch.softmax(z_heads["pid"], dim=-1)}, regularizers

    network = PeerNetwork()
    for module in network.modules():  # Keras' Dense start: Glorot-uniform kernels, zero biases
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter) and weight.dim() == 2:
            nn.init.xavier_uniform_(weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    with torch.no_grad():
        nn.init.zeros_(network.heads["energy_corr"].weight)
        for iteration in network.iterations:  # gravtrain's GravNet space starts as the seed, plus noise
            lin_s = iteration.gravnet.lin_s
            identity = torch.eye(lin_s.weight.shape[0], lin_s.weight.shape[1])
            lin_s.weight.copy_(identity + 0.01 * torch.randn_like(lin_s.weight))
            lin_s.bias.zero_()
    return network


def peer_loss(predictions: dict, truth: dict, row_splits: np.ndarray, options) -> tuple:
    """The peer's loss of a batch (module docstring): the OC package per event, gravtrain's payload terms."""
    import torch
    from object_condensation.pytorch.losses import condensation_loss

    beta = predictions["beta"][:, 0]
    t_idx = truth["t_idx"][:, 0]
    weights = 1.0 - truth["t_spectator"][:, 0]
    per_event = {"attractive": [], "repulsive": [], "beta": [], "noise": []}
    for start, end in zip(row_splits[:-1].tolist(), row_splits[1:].tolist()):
        if end == start:
            continue
        event_beta, event_idx = beta[start:end], t_idx[start:end]
        is_noise = event_idx < 0
        zero = event_beta.sum() * 0
        if bool((~is_noise).any()):
            terms = condensation_loss(beta=event_beta / 1.01, x=predictions["ccoords"][start:end],
                                      object_id=event_idx + 1, weights=weights[start:end], q_min=options.q_min)
            per_event["attractive"].append(terms["attractive"])
            per_event["repulsive"].append(terms["repulsive"])
            per_event["beta"].append(1.01 * terms["coward"] - 0.01)  # 1 - beta_alpha, from 1 - beta_alpha / 1.01
        else:
            per_event["attractive"].append(zero), per_event["repulsive"].append(zero), per_event["beta"].append(zero)
        per_event["noise"].append(event_beta[is_noise].mean() if bool(is_noise.any()) else zero)
    terms = {name: torch.stack(values).mean() for name, values in per_event.items()}

    # gravtrain's payload terms (gravtrain.losses.payload_terms): beta-weighted means over the object hits.
    xi = (t_idx >= 0).to(beta.dtype) * torch.atanh(beta / 1.01).square()

    def payload(per_hit):
        return (xi * per_hit).sum() / (xi.sum() + 1e-6)

    true_energy, recorded = truth["t_energy"][:, 0], truth["t_rec_energy"][:, 0]
    correction = predictions["energy_corr"][:, 0]
    terms["energy"] = payload((true_energy - correction * recorded).square() / (true_energy + 1.0))
    residual = 1.0 - correction.detach() * recorded / torch.where(true_energy == 0, 1.0, true_energy)

    def pinball(z, tau):
        return torch.maximum(tau * z, (tau - 1.0) * z)

    terms["energy_quantiles"] = payload(pinball(residual - predictions["energy_low_quantile"][:, 0], 0.16)
                                        + pinball(residual - predictions["energy_high_quantile"][:, 0], 0.84))
    true_class = truth["t_pid"]
    cross_entropy = -(true_class * torch.log(predictions["pid"] + 1e-7)).sum(-1)
    terms["classification"] = payload((true_class[:, -1] <= 0.5).to(beta.dtype) * cross_entropy)
    total = (terms["attractive"] + terms["repulsive"] + options.beta_loss_scale * terms["beta"]
             + options.noise_scale * terms["noise"]
             + options.energy_loss_weight * (terms["energy"] + terms["energy_quantiles"])
             + options.classification_loss_weight * terms["classification"])
    return total, terms


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


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": platform.processor()
            or platform.machine(), "logical_cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


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
