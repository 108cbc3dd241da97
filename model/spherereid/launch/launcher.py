"""Run a TrainJob to its end through the Kubernetes API: create it (or find the one a previous attempt of
the same task created), stream the first node's log, wait with a timeout, and delete it when done.

A failed job becomes a LaunchError carrying the job's condition message. The launcher's service account
needs RBAC on trainjobs (create, get, delete), pods (list) and pods/log (get).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .torchrun import LaunchError
from .trainjob import API_GROUP, API_VERSION, NODE, PLURAL

log = logging.getLogger(__name__)

JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def current_namespace(default: str = "kubeflow") -> str:
    """The pod's own namespace (in-cluster), else `default`."""
    try:
        return NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        return default


def in_cluster_api_client() -> Any:
    """A kubernetes ApiClient from the pod's service account."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException as exc:
        raise LaunchError(
            f"not running in a Kubernetes pod ({exc}): multi-node training needs the in-cluster "
            "service account"
        ) from None
    return client.ApiClient()


def job_outcome(job: dict[str, Any]) -> tuple[str, str]:
    """('Complete' | 'Failed' | 'Running', message) from a TrainJob's status conditions."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"], cond.get("message") or cond.get("reason") or ""
    return "Running", ""


class TrainJobLauncher:
    """create-or-find -> stream logs -> wait -> delete, against one namespace."""

    def __init__(self, api_client: Any, namespace: str, out: TextIO | None = None):
        from kubernetes import client

        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.out = out or sys.stdout

    def get(self, name: str) -> dict[str, Any] | None:
        """The TrainJob `name`, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise LaunchError(
                f"reading TrainJob {self.namespace}/{name}: HTTP {exc.status} {exc.reason}"
            ) from None

    def create_or_find(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(job, created): a job of the same name (an earlier attempt of this task) is reused, not doubled."""
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        existing = self.get(name)
        if existing is not None:
            log.info("found TrainJob %s/%s from an earlier attempt; following it", self.namespace, name)
            return existing, False
        try:
            job = self.custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, manifest
            )
        except ApiException as exc:
            if exc.status == 409:  # created by a concurrent attempt between get and create
                return self.get(name) or manifest, False
            raise LaunchError(
                f"creating TrainJob {self.namespace}/{name}: HTTP {exc.status} {exc.reason}: {exc.body}; "
                "check that Kubeflow Trainer is installed and the service account may create trainjobs"
            ) from None
        log.info("created TrainJob %s/%s", self.namespace, name)
        return job, True

    def delete(self, name: str) -> None:
        """Delete the job and its pods (foreground propagation); a missing job is fine."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                name,
                body=client.V1DeleteOptions(propagation_policy="Foreground"),
            )
            log.info("deleted TrainJob %s/%s", self.namespace, name)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete TrainJob %s/%s: HTTP %s", self.namespace, name, exc.status)

    def _first_node_pod(self, name: str) -> str | None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOBSET_LABEL}={name}").items
        ready = [p for p in pods if p.status and p.status.phase in ("Running", "Succeeded", "Failed")]
        ready.sort(key=lambda p: ((p.metadata.labels or {}).get(INDEX_LABEL, "0"), p.metadata.name))
        return ready[0].metadata.name if ready else None

    def stream_logs(self, name: str, stop: threading.Event, poll_s: float = 2.0) -> None:
        """Copy the first node's container log to `self.out` as it grows (until it ends or `stop`)."""
        pod = None
        while pod is None and not stop.is_set():
            pod = self._first_node_pod(name)
            if pod is None:
                stop.wait(poll_s)
        if pod is None:
            return
        resp = self.core.read_namespaced_pod_log(
            pod, self.namespace, container=NODE, follow=True, _preload_content=False
        )
        try:
            for chunk in resp.stream(4096):
                self.out.write(chunk.decode(errors="replace"))
                self.out.flush()
                if stop.is_set():
                    break
        finally:
            resp.release_conn()

    def run(
        self,
        manifest: dict[str, Any],
        *,
        timeout_s: float,
        poll_s: float = 10.0,
        drain_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any]:
        """Create or find the job, stream its log, wait for Complete/Failed, delete it; return the final job.

        Raises LaunchError for a failed job (with its message) or after `timeout_s` (the job is deleted
        either way: a retried task resumes from the checkpoint on the shared volume)."""
        name = manifest["metadata"]["name"]
        self.create_or_find(manifest)
        stop = threading.Event()
        logger = threading.Thread(target=self._stream_quietly, args=(name, stop, poll_s), daemon=True)
        logger.start()
        deadline = clock() + timeout_s
        try:
            while True:
                job = self.get(name)
                if job is None:
                    raise LaunchError(f"TrainJob {self.namespace}/{name} disappeared while running")
                state, message = job_outcome(job)
                if state == "Complete":
                    return job
                if state == "Failed":
                    raise LaunchError(f"TrainJob {self.namespace}/{name} failed: {message or 'no message'}")
                if clock() >= deadline:
                    raise LaunchError(
                        f"TrainJob {self.namespace}/{name} did not finish within {timeout_s:.0f} s; "
                        "raise the TrainJob timeout setting"
                    )
                time.sleep(poll_s)
        finally:
            logger.join(timeout=drain_s)  # let the rest of a finished pod's log arrive
            stop.set()
            self.delete(name)

    def _stream_quietly(self, name: str, stop: threading.Event, poll_s: float) -> None:
        try:
            self.stream_logs(name, stop, poll_s)
        except Exception as exc:  # noqa: BLE001 - the log is a convenience; the job status decides
            log.warning("stopped streaming the log of TrainJob %s: %s", name, exc)
