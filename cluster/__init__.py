"""Where a sweep runs: an embedded local Ray (default) or a running cluster (--address)."""

from cluster.local import ClusterError, connect

__all__ = ["ClusterError", "connect"]
