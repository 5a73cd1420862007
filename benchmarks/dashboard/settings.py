"""The benchmark's fixed settings: targets, timeouts, the synthetic runs' shape, and the exception of a stop signal."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The relay's entry point (``python remote_dashboard.py relay HOST PORT ONE_WAY_MS``, sshfs's ProxyCommand).
ENTRY_SCRIPT = Path(__file__).resolve().parents[1] / "remote_dashboard.py"
SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "apt-get install openssh-server sshfs"
#: gravtrain ui's targets, in seconds.
TARGET_FIRST_VIEW, TARGET_LIST, TARGET_NEW_RUN = 20.0, 1.0, 3.0
#: Seconds to wait for anything not otherwise bounded (a gravtrain ui first view, a new run to show).
UI_TIMEOUT, NEW_RUN_TIMEOUT = 600.0, 120.0
#: Within how long sshfs (with dcache_timeout=1) lists a new directory; a one-shot request waits this long first.
LISTING_CACHE_WAIT = 1.5
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
METRIC_KEYS = [
    "physics/efficiency", "physics/purity", "physics/fake_rate", "physics/energy_resolution",
    "physics/energy_response", "physics/signal_efficiency", "physics/noise_rejection", "train/loss/total",
    "train/loss/attractive", "train/loss/repulsive", "train/loss/beta", "train/loss/energy", "train/objective",
    "val/loss/total", "val/loss/attractive", "val/loss/repulsive", "val/loss/beta", "val/loss/energy",
    "val/objective", "system/step_seconds"]
PARAM_KEYS = [f"{section}.{index}.{field}"
              for section in ("Architecture.gravnet", "Architecture.dense", "Training", "Loss.terms",
                              "Data.sources", "Plotting.panels")
              for index in range(3)
              for field in ("n_neighbours", "n_propagate", "space_dims", "units", "activation", "dropout",
                            "batch_norm", "learning_rate", "weight", "enabled")][:150]
#: A run's artifacts: path -> size in bytes (random bytes, text for the YAML and the JSON).
ARTIFACTS = {"config.yaml": 2_000, "evaluation/roc.png": 50_000, "evaluation/response.png": 50_000,
             "model/model.keras": 300_000, "checkpoints/progress.json": 200}


class Stop(Exception):
    """SIGTERM or SIGHUP to the benchmark: unwinds like Ctrl-C, through every cleanup."""
