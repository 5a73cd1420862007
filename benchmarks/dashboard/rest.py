"""Rest: an MLflow server's REST API as the benchmark reads it, and the artifacts it serves."""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request

from dashboard.cluster_store import ClusterStore


class Server:
    """REST calls to an MLflow server at ``http://127.0.0.1:port``."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def request(self, path: str, body: dict | None = None, timeout: float = 60.0) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"} if body is not None else {})
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.read()

    def answers(self) -> bool:
        try:
            self.request("/health", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except (OSError, ValueError):
            return False

    def search_runs(self, experiment_id: str, timeout: float = 60.0, *,
                    first_page_only: bool = False) -> tuple[list[str], float, int]:
        """Every run of the experiment (pages of 100, as MLflow's UI asks; only the first, the newest runs, which
        is what the UI shows on opening, with ``first_page_only``): the IDs, seconds, pages."""
        started, ids, token, pages = time.monotonic(), [], None, 0
        while True:
            body = {"experiment_ids": [experiment_id], "max_results": 100}
            if token:
                body["page_token"] = token
            reply = json.loads(self.request("/api/2.0/mlflow/runs/search", body, timeout=timeout))
            pages += 1
            ids += [run["info"]["run_id"] for run in reply.get("runs", [])]
            token = reply.get("next_page_token")
            if not token or first_page_only:
                return ids, time.monotonic() - started, pages

    def experiment_tags(self, experiment_id: str) -> dict[str, str]:
        reply = json.loads(self.request("/api/2.0/mlflow/experiments/search", {"max_results": 1000}))
        for experiment in reply.get("experiments", []):
            if experiment["experiment_id"] == experiment_id:
                return {tag["key"]: tag["value"] for tag in experiment.get("tags", [])}
        return {}

    def list_artifacts(self, run_id: str, path: str = "") -> list[str]:
        """Every file below ``path`` of a run's artifacts, listed as the UI lists them (folder by folder)."""
        query = urllib.parse.urlencode({"run_uuid": run_id, **({"path": path} if path else {})})
        reply = json.loads(self.request(f"/ajax-api/2.0/mlflow/artifacts/list?{query}"))
        files = []
        for item in reply.get("files", []):
            if item.get("is_dir"):
                files += self.list_artifacts(run_id, item["path"])
            else:
                files.append(item["path"])
        return files

    def get_artifact(self, run_id: str, path: str) -> bytes:
        query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
        return self.request(f"/get-artifact?{query}")


def check_artifacts(server: Server, store: "ClusterStore", run_ids: list[str]) -> dict:
    """List and download every artifact of ``run_ids`` through the server; compare with the cluster's files."""
    started = time.monotonic()
    expected = listed = identical = 0
    errors: list[str] = []
    request_seconds = []
    for run_id in run_ids:
        on_cluster = store.artifact_files(run_id)
        expected += len(on_cluster)
        before = time.monotonic()
        try:
            seen = set(server.list_artifacts(run_id))
        except (OSError, ValueError) as exc:
            seen = set()
            errors.append(f"list {run_id}: {exc}")
        request_seconds.append(time.monotonic() - before)
        listed += len(seen & set(on_cluster))
        for path, local in on_cluster.items():
            before = time.monotonic()
            try:
                identical += server.get_artifact(run_id, path) == local.read_bytes()
            except (OSError, ValueError) as exc:
                errors.append(f"get {run_id}/{path}: {exc}")
            request_seconds.append(time.monotonic() - before)
    return {"runs": len(run_ids), "files_expected": expected, "files_listed": listed,
            "files_identical": identical, "seconds": time.monotonic() - started,
            "requests": len(request_seconds), "median_request_seconds": statistics.median(request_seconds)
            if request_seconds else None, "errors": len(errors), "first_errors": errors[:5]}
