"""Cluster_store: the synthetic store the cluster writes, with MLflow's own client."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from pathlib import Path

from dashboard.settings import ARTIFACTS, EXPERIMENT_KIND, METRIC_KEYS, PARAM_KEYS


class ClusterStore:
    """An MLflow directory store written as on a cluster: at ``alias`` (a link to ``real`` present only while
    writing, so the recorded artifact locations name a path that does not exist where the store is browsed)."""

    def __init__(self, root: Path, seed: int, *, packs: bool = True):
        self.packs = packs
        self.real = root / "cluster" / "mlruns"
        self.alias_folder = root / "cluster-workdir"
        self.alias = self.alias_folder / "mlruns"
        self.real.mkdir(parents=True)
        self.staging = root / "staging"
        self.seed = seed
        self.experiment_id: str | None = None
        self.written = 0

    @contextlib.contextmanager
    def writing(self):
        """The cluster side's path exists while it writes."""
        self.alias_folder.symlink_to(self.real.parent, target_is_directory=True)
        try:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            from mlflow.tracking import MlflowClient

            yield MlflowClient(tracking_uri=self.alias.as_uri())
        finally:
            self.alias_folder.unlink()

    def create(self, runs: int) -> float:
        started = time.monotonic()
        with self.writing() as client:
            self.experiment_id = client.create_experiment("hgcal-gravnet")
            tags = client.get_experiment(self.experiment_id).tags
            if EXPERIMENT_KIND[0] in tags:  # as older gravtrain made them: without it
                client.delete_experiment_tag(self.experiment_id, EXPERIMENT_KIND[0])
            for _ in range(runs):
                self.write_run(client)
        return time.monotonic() - started

    def write_run(self, client, on_created=None) -> str:
        """One FINISHED run of the benchmark's shape; ``on_created(run_id)`` is called once its meta.yaml is
        written, and may return a thread-safe way to continue (the rest is written anyway)."""
        from mlflow.entities import Metric, Param

        index = self.written
        self.written += 1
        digest = hashlib.sha256(f"{self.seed}-{index}".encode()).hexdigest()
        run = client.create_run(self.experiment_id, run_name=f"hgcal-{index:04d}", tags={
            "gravtrain.stage": "train", "gravtrain.config_sha256": digest, "gravtrain.version": "0.5.0"})
        run_id = run.info.run_id
        if on_created is not None:
            on_created(run_id)
        params = [Param(key, str((number * 31 + index) % 97)) for number, key in enumerate(PARAM_KEYS)]
        now = int(time.time() * 1000)
        metrics = [Metric(key, 1.0 / (1 + step + number + index % 7), now + step, step)
                   for number, key in enumerate(METRIC_KEYS) for step in range(5)]
        client.log_batch(run_id, params=params, metrics=metrics)
        folder = self.staging / run_id
        for path, size in ARTIFACTS.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.endswith((".yaml", ".json")):
                line = f"# run {run_id} {digest}\n".encode()
                target.write_bytes((line * (size // len(line) + 1))[:size])
            else:
                target.write_bytes(os.urandom(size))
        client.log_artifacts(run_id, str(folder))
        shutil.rmtree(folder)
        client.set_terminated(run_id, "FINISHED")
        if self.packs:  # as gravtrain's tracker ends a run of a directory store
            from gravtrain.tracking.run_pack import write_run_pack

            write_run_pack(self.real / self.experiment_id / run_id)
        return run_id

    def run_ids(self) -> list[str]:
        folder = self.real / self.experiment_id
        return sorted(p.name for p in folder.iterdir() if (p / "meta.yaml").is_file())

    def artifact_files(self, run_id: str) -> dict[str, Path]:
        root = self.real / self.experiment_id / run_id / "artifacts"
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def remove_run(self, run_id: str) -> None:
        shutil.rmtree(self.real / self.experiment_id / run_id)

    def recorded_artifact_root(self, run_id: str) -> str:
        import yaml

        return yaml.safe_load((self.real / self.experiment_id / run_id / "meta.yaml").read_text())["artifact_uri"]
