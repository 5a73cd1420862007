"""The PyTorch peer of ``benchmarks/peer_training.py``: its network and loss, mirroring gravtrain's
``build_model`` and object-condensation loss for a config (what it mirrors and where it must differ is in
``peer_training``'s docstring). torch, PyTorch Geometric, torch-cluster and object-condensation are imported
inside the functions, so this module imports without them.
"""

from __future__ import annotations

import dataclasses

import numpy as np


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
