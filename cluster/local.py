"""The only place that starts or joins Ray."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator

# Quiet Tune before it is imported: we print our own progress (sweep/progress.py), one line per trial.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


class ClusterError(RuntimeError):
    """Ray could not be started or joined; str(error) is one line."""


def _use_token_if_available() -> None:
    # Ray >= 2.59 heads enable token auth by default and keep the token in ~/.ray/auth_token, but a driver
    # joining with an address leaves auth "disabled" unless RAY_AUTH_MODE says otherwise (measured with 2.60).
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH", os.path.expanduser("~/.ray/auth_token"))
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(token_file)):
        os.environ["RAY_AUTH_MODE"] = "token"


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast: ray.init(address=HOST:PORT) retries for many minutes when nothing listens there."""
    if "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ClusterError(f"cannot join the Ray cluster at {address}: nothing answers there ({e})") from None


# Before ray is imported: Ray reads RAY_AUTH_MODE into its config once, at import.
_use_token_if_available()


@contextlib.contextmanager
def _addressed_by_its_processes() -> Iterator[None]:
    """Start the embedded Ray on a GCS port chosen here, with RAY_ADDRESS naming it in the environment its
    processes inherit. Ray Train's placement-group cleaner looks its cluster up by address, and with another Ray
    on the machine (a second sweep, the two-node test cluster) it finds two, gives up, and the next
    multi-worker trial waits forever for the CPUs of the last one (measured with Ray 2.60). `address="local"`
    makes ray.init start a new instance whatever RAY_ADDRESS says; both variables are restored afterwards."""
    from ray._private.services import get_node_ip_address

    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    saved = {k: os.environ.get(k) for k in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")}
    # the address the GCS serves on: the node's IP, as Ray picks it
    os.environ.update(RAY_ADDRESS=f"{get_node_ip_address()}:{port}", RAY_GCS_SERVER_PORT=str(port))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def connect(
    address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None, dashboard: bool = False
) -> Iterator[None]:
    """Join the cluster at `address`, or start an embedded single-node Ray that stops on exit.

    The embedded Ray runs a dashboard (bound to 127.0.0.1 only) when `dashboard` is set: Ray Train V2 frees a
    finished run's placement group through the state API it serves; without it the next multi-worker trial of
    the sweep waits forever (measured with Ray 2.60).
    """
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = dict(configure_logging=True, logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, **quiet)
        else:
            with _addressed_by_its_processes():
                ray.init(
                    address="local",
                    num_cpus=num_cpus,
                    num_gpus=num_gpus,
                    include_dashboard=dashboard,
                    dashboard_host="127.0.0.1",
                    **quiet,
                )
    except ClusterError:
        raise
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"cannot {where}: {reason}") from None
    except BaseException:  # e.g. SIGTERM (Ray's handler exits) while it starts: leave no half-started Ray behind
        if not address:
            stop_embedded()
        raise
    _EMBEDDED[:] = [] if address else _own_ray_processes()
    try:
        yield
    finally:
        _EMBEDDED[:] = []
        ray.shutdown()


_EMBEDDED: list = []  # the embedded Ray's own processes (GCS, raylet, dashboard, agents, monitors) while it runs


def _own_ray_processes() -> list:
    """The embedded Ray's processes under this one, its workers (which come and go) left out."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            line = " ".join(proc.cmdline())
            if "ray::IDLE" not in line and "default_worker.py" not in line:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def embedded_lost() -> bool:
    """Whether a process of the embedded Ray has ended: a signal sent to the whole process group reaches its
    dashboard and agents too (GCS and raylet outlive SIGTERM, but stop answering some calls for a minute), so
    a stopping sweep cannot stop gracefully and ends at once."""
    import psutil

    for proc in list(_EMBEDDED):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
    return False


def stop_embedded() -> None:
    """Kill the processes the embedded Ray started under this one (when ending without ray.shutdown)."""
    import psutil

    for proc in psutil.Process().children(recursive=True):
        try:
            line = " ".join(proc.cmdline())
            if proc.name() in ("gcs_server", "raylet") or line.startswith("ray::") or "/ray/" in line:
                proc.kill()
        except psutil.Error:
            pass
