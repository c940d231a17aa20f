#!/usr/bin/env bash
# A local two-node Ray cluster on this machine, for tests and demos: a head and a second raylet, each with its own
# CPUs and a custom resource naming it (node_head, node_worker), dashboard and job server on 127.0.0.1 only.
#
#   cluster/local_cluster.sh start [CPUS_PER_NODE]     # default 2; prints the addresses
#   sparsity submit sweep/specs/demo.yaml --address http://127.0.0.1:8265 --storage /tmp/sweeps --wait 600
#   cluster/local_cluster.sh stop
#
# Ports: RAY_PORT (6379), DASHBOARD_PORT (8265). Uses the `ray` next to this project's .venv if there is one.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ray="${RAY:-$here/.venv/bin/ray}"
[ -x "$ray" ] || ray="$(command -v ray)"
export PATH="$(dirname "$ray"):$PATH"  # jobs' entrypoints run `python` from the raylet's PATH: the same environment
port="${RAY_PORT:-6379}"
dashboard="${DASHBOARD_PORT:-8265}"
cpus="${2:-2}"
case "${1:-}" in
  start)
    "$ray" start --head --node-ip-address 127.0.0.1 --port "$port" --dashboard-host 127.0.0.1 \
      --dashboard-port "$dashboard" --num-cpus "$cpus" --num-gpus 0 --resources '{"node_head": 1}' \
      --disable-usage-stats >/dev/null
    # Ray >= 2.59 heads use token auth: a second raylet joining by address must be told so
    if [ -f "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]; then export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"; fi
    # its own temp dir: two raylets sharing one session dir unpack a job's working dir into the same folder
    # and delete it under each other's processes (measured with Ray 2.60)
    "$ray" start --address "127.0.0.1:$port" --node-ip-address 127.0.0.1 --num-cpus "$cpus" --num-gpus 0 \
      --resources '{"node_worker": 1}' --temp-dir "${TMPDIR:-/tmp}/ray-second-node" >/dev/null
    echo "two-node Ray cluster up: GCS 127.0.0.1:$port, jobs http://127.0.0.1:$dashboard ($cpus CPUs per node)"
    ;;
  stop)
    "$ray" stop --force >/dev/null 2>&1 || true
    echo "stopped"
    ;;
  *)
    echo "usage: $0 start [CPUS_PER_NODE] | stop" >&2
    exit 2
    ;;
esac
