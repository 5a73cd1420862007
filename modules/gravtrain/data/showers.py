"""Particles and their energy deposits in the toy calorimeter (vectorised NumPy, one event at a time).

Particles come from near the origin in one to three narrow jets inside the acceptance, so that showers of
one event overlap. Energies are log-uniform. Each particle becomes a list of energy *spots* (point
deposits, GeV at the electromagnetic scale) with a layer, a transverse position and a time:

- photon, electron: one EM shower. Depth along the particle path t (X0) follows the gamma distribution
  dE/dt ~ (b t)^(a-1) exp(-b t) with b = 0.5 and a = 1 + b t_max, t_max = ln(E / E_c) + C (C = -0.5 for
  electrons, +0.5 for photons, E_c = 8.1 MeV), with a per-shower jitter of a. The number of spots is
  Poisson(50 / GeV x E) and each spot's energy is exponential, which gives a stochastic term of about
  20 % / sqrt(E / GeV) (the sampling fluctuations). Lateral spread: a core and a halo, both widening with
  depth, scaled by the Moliere radius.
- charged pion, neutral hadron: the first interaction is at an exponential depth (1 lambda). A charged
  pion leaves a minimum-ionising track in the layers in front of it. The shower is an EM part (fraction
  f_em = 1 - E^-0.18, jittered) split into several pi0 sub-showers at random depths and transverse
  offsets, plus a hadronic part, seen with h/e = 0.55 (invisible energy), sampled with 20 spots / GeV,
  whose depth (lambda) is gamma-distributed with t_max = 0.2 ln(E / GeV) + 0.7 and whose lateral spread
  is wide and grows with depth; some of its spots are late (neutrons). Hadronic showers are therefore
  longer, wider, more irregular and fluctuate more than EM ones.
- muon (and a pion before it interacts): one deposit per crossed layer, MIP energy / cos(theta) times a
  Landau-like (Moyal) factor; a muon stops when it has lost its energy.

A particle that escapes (a muon that does not stop, a pion that does not interact) is flagged ``escapes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gravtrain.data.geometry import SPEED_OF_LIGHT_CM_PER_NS, CalorimeterGeometry
from gravtrain.data.names import PID_INDEX

SPECIES_NAMES = ("photon", "electron", "charged_pion", "neutral_hadron", "muon")
SPECIES_FRACTIONS = np.array([0.25, 0.15, 0.30, 0.15, 0.15])
SPECIES_PID = np.array([PID_INDEX[n] for n in ("photon", "electron", "charged_hadron", "neutral_hadron", "muon")])
SPECIES_MASS_GEV = np.array([0.0, 0.000511, 0.13957, 0.49761, 0.10566])
SPECIES_IS_CHARGED = np.array([False, True, True, False, True])
PHOTON, ELECTRON, CHARGED_PION, NEUTRAL_HADRON, MUON = range(5)

JET_SPREAD = 0.07               # sigma of a particle's eta and phi around its jet axis
ACCEPTANCE_MARGIN_ETA = 0.15    # particles are generated this far inside the eta acceptance
VERTEX_SIGMA_Z_CM = 5.0
VERTEX_SIGMA_XY_CM = 0.01
VERTEX_SIGMA_T_NS = 0.18

EM_CRITICAL_ENERGY_GEV = 0.0081
EM_PROFILE_B = 0.5
EM_SPOTS_PER_GEV = 100.0
MOLIERE_RADIUS_CM = 2.5
HADRONIC_SPOTS_PER_GEV = 40.0
HADRON_H_OVER_E = 0.55
HADRONIC_PROFILE_SCALE_LAMBDA = 0.9
HADRON_LATE_FRACTION = 0.2      # share of hadronic spots delayed by neutrons
HADRON_LATE_DELAY_NS = 2.0


@dataclass(frozen=True)
class Particles:
    """The generated particles of one event (n of them); index i is the object index ``t_idx``."""

    species: np.ndarray       # (n,) int, index into SPECIES_NAMES
    energy_gev: np.ndarray    # (n,) true energy
    direction: np.ndarray     # (n, 3) unit vector
    impact_cm: np.ndarray     # (n, 3) position at the calorimeter front
    time_front_ns: np.ndarray  # (n,) arrival time at the calorimeter front

    @property
    def n(self) -> int:
        return len(self.species)


@dataclass(frozen=True)
class Deposits:
    """Energy spots of one event (S of them) inside the detector depth; spots behind it are dropped."""

    particle: np.ndarray   # (S,) index of the depositing particle
    layer: np.ndarray      # (S,) layer index
    x_cm: np.ndarray       # (S,)
    y_cm: np.ndarray       # (S,)
    energy_gev: np.ndarray  # (S,) EM-scale energy
    time_ns: np.ndarray    # (S,)
    generated_gev: np.ndarray  # (n,) energy of all spots of each particle, including those behind the detector
    escapes: np.ndarray    # (n,) bool: a muon or an uninteracted pion leaves through the back


def species_probabilities(species: tuple[str, ...] | None) -> np.ndarray:
    """Probabilities over SPECIES_NAMES: the default mix, or the default mix restricted to ``species``."""
    if species is None:
        return SPECIES_FRACTIONS
    unknown = sorted(set(species) - set(SPECIES_NAMES))
    if unknown or not species:
        raise ValueError(f"unknown species {unknown}; choose from {list(SPECIES_NAMES)}")
    chosen = np.isin(SPECIES_NAMES, species)
    return np.where(chosen, SPECIES_FRACTIONS, 0.0) / SPECIES_FRACTIONS[chosen].sum()


def generate_particles(rng: np.random.Generator, geometry: CalorimeterGeometry, *, n_particles: tuple[int, int],
                       energy_range: tuple[float, float], species_probability: np.ndarray = SPECIES_FRACTIONS
                       ) -> Particles:
    """Draw one event's particles: count uniform in ``n_particles``, energy log-uniform in ``energy_range`` (GeV)."""
    n = int(rng.integers(n_particles[0], n_particles[1] + 1))
    n_jets = int(rng.integers(1, 4))
    eta_low, eta_high = geometry.eta_min + ACCEPTANCE_MARGIN_ETA, geometry.eta_max - ACCEPTANCE_MARGIN_ETA
    jet_eta = rng.uniform(eta_low + JET_SPREAD, eta_high - JET_SPREAD, n_jets)
    jet_phi = rng.uniform(-np.pi, np.pi, n_jets)
    jet = rng.integers(0, n_jets, n)
    eta = np.clip(jet_eta[jet] + rng.normal(0.0, JET_SPREAD, n), eta_low, eta_high)
    phi = jet_phi[jet] + rng.normal(0.0, JET_SPREAD, n)
    species = rng.choice(len(SPECIES_NAMES), size=n, p=species_probability)
    log_e = rng.uniform(np.log(energy_range[0]), np.log(energy_range[1]), n)
    energy = np.maximum(np.exp(log_e), SPECIES_MASS_GEV[species] * 1.01)

    theta = 2.0 * np.arctan(np.exp(-eta))
    direction = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
    vertex = np.stack([rng.normal(0.0, VERTEX_SIGMA_XY_CM, n), rng.normal(0.0, VERTEX_SIGMA_XY_CM, n),
                       rng.normal(0.0, VERTEX_SIGMA_Z_CM, n)], axis=1)
    path_cm = (geometry.z_front_cm - vertex[:, 2]) / direction[:, 2]
    impact = vertex + direction * path_cm[:, None]
    collision_time = rng.normal(0.0, VERTEX_SIGMA_T_NS)
    time_front = collision_time + path_cm / SPEED_OF_LIGHT_CM_PER_NS
    return Particles(species=species, energy_gev=energy, direction=direction, impact_cm=impact,
                     time_front_ns=time_front)


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of sizes ``counts``: (group index of each member, position of each member in its group)."""
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return group, np.arange(counts.sum()) - starts[group]


def _minimum_ionising_deposits(rng, geometry, particles, n_layers_crossed):
    """One deposit per crossed layer on the particle's straight line (the first n layers)."""
    owner, layer = _segments(n_layers_crossed)
    uz = particles.direction[owner, 2]
    z = geometry.sensor_z_cm[layer]
    travel = (z - geometry.z_front_cm) / uz
    x = particles.impact_cm[owner, 0] + particles.direction[owner, 0] * travel
    y = particles.impact_cm[owner, 1] + particles.direction[owner, 1] * travel
    moyal = -np.log(rng.chisquare(1.0, len(owner)))  # standard Moyal: mode 0, long upper tail
    energy = geometry.mip_gev[layer] / uz * np.clip(1.0 + 0.12 * moyal, 0.3, 6.0)
    time = particles.time_front_ns[owner] + travel / SPEED_OF_LIGHT_CM_PER_NS
    return owner, layer, x, y, energy, time


def _shower_components(rng, geometry, particles):
    """The EM and hadronic shower components of all particles, and each pion's layers of MIP track.

    Returns (components dict of per-component arrays, n_layers_crossed per particle, escapes per particle).
    """
    n, species, energy, uz = particles.n, particles.species, particles.energy_gev, particles.direction[:, 2]
    is_em = (species == PHOTON) | (species == ELECTRON)
    is_hadron = (species == CHARGED_PION) | (species == NEUTRAL_HADRON)
    total_lambda = geometry.boundary_lambda[-1]

    # First interaction of hadrons: depth along the path (lambda), as a z position.
    interaction_normal_lambda = rng.exponential(1.0, n) * uz
    interacts = is_hadron & (interaction_normal_lambda < total_lambda)
    start_z = np.where(is_hadron, geometry.z_from_lambda(np.minimum(interaction_normal_lambda, total_lambda)),
                       geometry.z_front_cm)

    # pi0 sub-showers of interacting hadrons: 1 + Poisson(0.6 ln(1 + E)) of them, Dirichlet energy shares.
    f_em = np.clip(1.0 - energy ** -0.18 + rng.normal(0.0, 0.08, n), 0.05, 0.95)
    n_sub = np.where(interacts, 1 + rng.poisson(0.6 * np.log1p(energy)), 0)
    sub_owner, _ = _segments(n_sub)
    shares = rng.gamma(1.0, 1.0, len(sub_owner))
    shares /= np.bincount(sub_owner, shares, minlength=n)[sub_owner]
    sub_start_z = geometry.z_from_lambda(geometry.lambda_at_z(start_z[sub_owner])
                                         + rng.exponential(0.25, len(sub_owner)) * uz[sub_owner])
    hadronic_visible = (1.0 - f_em) * energy * HADRON_H_OVER_E * rng.lognormal(0.0, 0.1, n)

    em_owner = np.flatnonzero(is_em)
    had_owner = np.flatnonzero(interacts)
    owner = np.r_[em_owner, sub_owner, had_owner]
    n_em_like = len(em_owner) + len(sub_owner)
    components = {
        "owner": owner,
        "is_hadronic": np.r_[np.zeros(n_em_like, bool), np.ones(len(had_owner), bool)],
        "energy": np.r_[energy[em_owner], f_em[sub_owner] * energy[sub_owner] * shares, hadronic_visible[had_owner]],
        "em_shift": np.r_[np.where(species[em_owner] == ELECTRON, -0.5, 0.5), np.full(len(sub_owner), 0.5),
                          np.zeros(len(had_owner))],
        "start_z": np.r_[start_z[em_owner], sub_start_z, start_z[had_owner]],
        "offset_x": np.r_[np.zeros(len(em_owner)), rng.normal(0.0, 2.5, len(sub_owner)), np.zeros(len(had_owner))],
        "offset_y": np.r_[np.zeros(len(em_owner)), rng.normal(0.0, 2.5, len(sub_owner)), np.zeros(len(had_owner))],
    }
    # MIP track layers: muons until they have lost their energy, pions until their interaction layer.
    cumulative_mip = np.cumsum(geometry.mip_gev)
    muon_layers = np.searchsorted(cumulative_mip, energy * uz)
    pion_layers = np.clip(geometry.layer_of_z(start_z), 0, geometry.n_layers)
    n_layers_crossed = np.where(species == MUON, muon_layers, np.where(species == CHARGED_PION, pion_layers, 0))
    escapes = ((species == MUON) & (muon_layers >= geometry.n_layers)) | (is_hadron & ~interacts)
    return components, n_layers_crossed, escapes


def _spots_of_components(rng, geometry, particles, components):
    """Sample energy spots of all shower components: depth, layer, transverse position, energy, time."""
    comp_energy = components["energy"]
    is_hadronic = components["is_hadronic"]
    spots_per_gev = np.where(is_hadronic, HADRONIC_SPOTS_PER_GEV, EM_SPOTS_PER_GEV)
    n_spots = rng.poisson(spots_per_gev * comp_energy)
    comp, _ = _segments(n_spots)
    owner = components["owner"][comp]
    hadronic = is_hadronic[comp]
    uz = particles.direction[owner, 2]
    e_comp = comp_energy[comp]

    # Longitudinal: gamma profile in X0 (EM) or lambda (hadronic), along the path.
    em_t_max = np.maximum(np.log(np.maximum(e_comp, 0.02) / EM_CRITICAL_ENERGY_GEV) + components["em_shift"][comp], 0.5)
    had_t_max = 0.2 * np.log(np.maximum(e_comp / HADRON_H_OVER_E, 1.0)) + 0.7
    jitter = rng.normal(1.0, 0.05, len(comp_energy))[comp]
    shape = np.where(hadronic, 1.0 + had_t_max / HADRONIC_PROFILE_SCALE_LAMBDA, 1.0 + EM_PROFILE_B * em_t_max) * jitter
    scale = np.where(hadronic, HADRONIC_PROFILE_SCALE_LAMBDA, 1.0 / EM_PROFILE_B)
    depth = rng.gamma(shape, scale)
    start_z = components["start_z"][comp]
    start_depth = np.where(hadronic, geometry.lambda_at_z(start_z), geometry.x0_at_z(start_z))
    normal_depth = start_depth + depth * uz
    z = np.where(hadronic, geometry.z_from_lambda(normal_depth), geometry.z_from_x0(normal_depth))
    total = np.where(hadronic, geometry.boundary_lambda[-1], geometry.boundary_x0[-1])
    layer = np.where(normal_depth < total, geometry.layer_of_z(z), geometry.n_layers)

    # Lateral: core and halo Gaussians, widening with relative depth.
    relative_depth = depth / np.where(hadronic, 1.0, em_t_max)
    in_core = rng.random(len(comp)) < np.where(hadronic, 0.6, 0.75)
    em_sigma = MOLIERE_RADIUS_CM * np.where(in_core, 0.2 + 0.15 * relative_depth, 0.6 + 0.4 * relative_depth)
    had_sigma = np.where(in_core, 2.5 * (1.0 + 0.3 * relative_depth), 8.0 * (1.0 + 0.2 * relative_depth))
    sigma = np.where(hadronic, had_sigma, em_sigma)
    travel = (z - geometry.z_front_cm) / uz
    x = (particles.impact_cm[owner, 0] + particles.direction[owner, 0] * travel + components["offset_x"][comp]
         + sigma * rng.standard_normal(len(comp)))
    y = (particles.impact_cm[owner, 1] + particles.direction[owner, 1] * travel + components["offset_y"][comp]
         + sigma * rng.standard_normal(len(comp)))

    energy = rng.exponential(1.0 / spots_per_gev[comp])
    late = hadronic & (rng.random(len(comp)) < HADRON_LATE_FRACTION)
    time = (particles.time_front_ns[owner] + travel / SPEED_OF_LIGHT_CM_PER_NS
            + np.where(late, rng.exponential(HADRON_LATE_DELAY_NS, len(comp)), 0.0))
    return owner, layer, x, y, energy, time


def shower_deposits(rng: np.random.Generator, geometry: CalorimeterGeometry, particles: Particles) -> Deposits:
    """All energy spots of one event's particles (showers and MIP tracks), inside the detector depth."""
    components, n_layers_crossed, escapes = _shower_components(rng, geometry, particles)
    shower = _spots_of_components(rng, geometry, particles, components)
    track = _minimum_ionising_deposits(rng, geometry, particles, n_layers_crossed)
    owner, layer, x, y, energy, time = (np.concatenate(pair) for pair in zip(shower, track))
    generated = np.bincount(owner, energy, minlength=particles.n)
    inside = layer < geometry.n_layers
    return Deposits(particle=owner[inside], layer=layer[inside], x_cm=x[inside], y_cm=y[inside],
                    energy_gev=energy[inside], time_ns=time[inside], generated_gev=generated, escapes=escapes)
