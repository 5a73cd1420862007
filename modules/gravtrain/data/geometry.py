"""Geometry of the toy sampling calorimeter: one endcap, layers along z, square cells per layer.

The detector is modelled on the CMS HGCAL endcap, simplified:

- It starts at ``z_front_cm`` = 320 cm and covers 1.5 < eta < 3.0 (a projective annulus whose radii grow
  with z).
- 28 electromagnetic (EM) layers, each 0.95 radiation lengths (X0) of tungsten-like absorber followed
  by a sensor, 1.1 cm apart, with 1 cm cells (26.6 X0, about 0.95 interaction lengths, in all);
- 12 hadronic layers, each 0.7 interaction lengths (lambda) of steel-like absorber, 7.5 cm apart, with
  3 cm cells (8.4 lambda more): 40 layers and about 9.4 lambda in all.
- Each layer's sensor sits at the back of its absorber. Energy deposited in a layer's absorber and sensor
  is read out by the cell of that layer's sensor that contains the deposit's (x, y).
- ``mip_gev``: the energy (EM scale, GeV) a minimum-ionising particle deposits crossing a layer at normal
  incidence; the zero-suppression threshold is ``THRESHOLD_MIP`` of it.

Depth is handled with piecewise-linear maps between z (cm) and cumulative material (X0 or lambda), so
showers can be sampled in their natural units and placed in z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_LIGHT_CM_PER_NS = 29.9792458

N_EM_LAYERS = 28
N_HADRONIC_LAYERS = 12
EM_LAYER_X0 = 0.95              # radiation lengths per EM layer
EM_X0_PER_LAMBDA = 28.0         # tungsten: lambda / X0
HADRONIC_LAYER_LAMBDA = 0.7     # interaction lengths per hadronic layer
HADRONIC_X0_PER_LAMBDA = 9.5    # steel: lambda / X0
EM_LAYER_PITCH_CM = 1.1
HADRONIC_LAYER_PITCH_CM = 7.5
EM_CELL_CM = 0.7
HADRONIC_CELL_CM = 2.5
EM_LAYER_MIP_GEV = 0.00735      # 0.95 X0 of W: 6.42 g/cm2 x 1.145 MeV cm2/g
HADRONIC_LAYER_MIP_GEV = 0.134  # 0.7 lambda of Fe: 92.5 g/cm2 x 1.451 MeV cm2/g
THRESHOLD_MIP = 0.5             # zero suppression, in MIPs of the layer
ELECTRONIC_NOISE_MIP = 0.1      # Gaussian noise on every cell's energy, in MIPs of the layer


@dataclass(frozen=True)
class CalorimeterGeometry:
    """Layer table of the toy endcap. Arrays are indexed by layer (L layers) unless said otherwise.

    Attributes:
        z_front_cm: z of the calorimeter front face (cm).
        eta_min, eta_max: pseudorapidity acceptance of the annulus.
        boundary_z_cm: (L+1,) z of the layer boundaries (cm); layer i spans boundary i to i+1.
        boundary_x0: (L+1,) cumulative radiation lengths at the boundaries.
        boundary_lambda: (L+1,) cumulative interaction lengths at the boundaries.
        sensor_z_cm: (L,) z of each layer's sensor (cm), where its hits are placed.
        cell_size_cm: (L,) edge of the square cells (cm).
        mip_gev: (L,) energy of a minimum-ionising particle crossing the layer (GeV, EM scale).
        threshold_gev: (L,) zero-suppression threshold (GeV).
        noise_sigma_gev: (L,) electronic noise per cell (GeV).
        is_em: (L,) True for the electromagnetic layers.
    """

    z_front_cm: float
    eta_min: float
    eta_max: float
    boundary_z_cm: np.ndarray
    boundary_x0: np.ndarray
    boundary_lambda: np.ndarray
    sensor_z_cm: np.ndarray
    cell_size_cm: np.ndarray
    mip_gev: np.ndarray
    threshold_gev: np.ndarray
    noise_sigma_gev: np.ndarray
    is_em: np.ndarray

    @property
    def n_layers(self) -> int:
        return len(self.sensor_z_cm)

    @property
    def z_back_cm(self) -> float:
        return float(self.boundary_z_cm[-1])

    def radius_range_cm(self, z_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R_min, R_max) of the acceptance annulus at ``z_cm`` (cm): projective in eta."""
        tan_theta_small = np.tan(2.0 * np.arctan(np.exp(-self.eta_max)))
        tan_theta_large = np.tan(2.0 * np.arctan(np.exp(-self.eta_min)))
        z = np.asarray(z_cm, dtype=np.float64)
        return z * tan_theta_small, z * tan_theta_large

    def cells_per_layer(self) -> np.ndarray:
        """(L,) approximate number of cells in each layer's annulus (area / cell area)."""
        r_min, r_max = self.radius_range_cm(self.sensor_z_cm)
        return np.pi * (r_max**2 - r_min**2) / self.cell_size_cm**2

    def z_from_x0(self, depth_x0: np.ndarray) -> np.ndarray:
        """z (cm) at a cumulative depth in radiation lengths from the front (normal incidence)."""
        return np.interp(depth_x0, self.boundary_x0, self.boundary_z_cm)

    def z_from_lambda(self, depth_lambda: np.ndarray) -> np.ndarray:
        """z (cm) at a cumulative depth in interaction lengths from the front (normal incidence)."""
        return np.interp(depth_lambda, self.boundary_lambda, self.boundary_z_cm)

    def x0_at_z(self, z_cm: np.ndarray) -> np.ndarray:
        """Cumulative radiation lengths in front of ``z_cm``."""
        return np.interp(z_cm, self.boundary_z_cm, self.boundary_x0)

    def lambda_at_z(self, z_cm: np.ndarray) -> np.ndarray:
        """Cumulative interaction lengths in front of ``z_cm``."""
        return np.interp(z_cm, self.boundary_z_cm, self.boundary_lambda)

    def layer_of_z(self, z_cm: np.ndarray) -> np.ndarray:
        """Layer index containing ``z_cm``; -1 in front of the detector, L behind it."""
        return np.searchsorted(self.boundary_z_cm, z_cm, side="right") - 1


def default_geometry() -> CalorimeterGeometry:
    """The 40-layer toy endcap described in the module docstring."""
    pitch = np.r_[np.full(N_EM_LAYERS, EM_LAYER_PITCH_CM), np.full(N_HADRONIC_LAYERS, HADRONIC_LAYER_PITCH_CM)]
    x0 = np.r_[np.full(N_EM_LAYERS, EM_LAYER_X0),
               np.full(N_HADRONIC_LAYERS, HADRONIC_LAYER_LAMBDA * HADRONIC_X0_PER_LAMBDA)]
    lam = np.r_[np.full(N_EM_LAYERS, EM_LAYER_X0 / EM_X0_PER_LAMBDA), np.full(N_HADRONIC_LAYERS, HADRONIC_LAYER_LAMBDA)]
    z_front = 320.0
    boundary_z = z_front + np.r_[0.0, np.cumsum(pitch)]
    is_em = np.r_[np.ones(N_EM_LAYERS, bool), np.zeros(N_HADRONIC_LAYERS, bool)]
    mip = np.where(is_em, EM_LAYER_MIP_GEV, HADRONIC_LAYER_MIP_GEV)
    return CalorimeterGeometry(
        z_front_cm=z_front,
        eta_min=1.5,
        eta_max=3.0,
        boundary_z_cm=boundary_z,
        boundary_x0=np.r_[0.0, np.cumsum(x0)],
        boundary_lambda=np.r_[0.0, np.cumsum(lam)],
        sensor_z_cm=boundary_z[1:] - 0.05 * pitch,
        cell_size_cm=np.where(is_em, EM_CELL_CM, HADRONIC_CELL_CM),
        mip_gev=mip,
        threshold_gev=THRESHOLD_MIP * mip,
        noise_sigma_gev=ELECTRONIC_NOISE_MIP * mip,
        is_em=is_em,
    )
