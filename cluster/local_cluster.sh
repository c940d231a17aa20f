#!/usr/bin/env bash
# A local two-node Ray cluster on this machine, for tests and demos: a head and a second raylet, each with its own
# CPUs and a custom resource naming it (node_head, node_worker), dashboard and job server on 127.0.0.1 only.
#
#   cluster/local_cluster.sh start [CPUS_PER_NODE]     # default 2; prints the addresses
#   sparsity submit sweep/specs/demo.yaml --address http://127.0.0.1:8265 --storage /tmp/sweeps --wait 600
#   cluster/local_cluster.sh stop
#
# Ports: RAY_PORT (6379), DASHBOARD_PORT (8265), and RAY_PORT + 1..3 for the nodes' dashboard agents and the
# head's client server (not Ray's fixed defaults: another Ray on the machine holds those, and a head whose job
# agent cannot bind takes no job). Uses the `ray` next to this project's .venv if there is one.
# `stop` ends this cluster only (its processes run under its own temp dir, ${TMPDIR:-/tmp}/ray-cluster-PORT): a
# sweep's embedded Ray or another cluster on the machine goes on (`ray stop` would end every Ray here).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ray="${RAY:-$here/.venv/bin/ray}"
[ -x "$ray" ] || ray="$(command -v ray)"
export PATH="$(dirname "$ray"):$PATH"  # jobs' entrypoints run `python` from the raylet's PATH: the same environment
port="${RAY_PORT:-6379}"
dashboard="${DASHBOARD_PORT:-8265}"
cpus="${2:-2}"
base="${TMPDIR:-/tmp}/ray-cluster-$port"
case "${1:-}" in
  start)
    "$ray" start --head --node-ip-address 127.0.0.1 --port "$port" --dashboard-host 127.0.0.1 \
      --dashboard-port "$dashboard" --num-cpus "$cpus" --num-gpus 0 --resources '{"node_head": 1}' \
      --dashboard-agent-listen-port "$((port + 1))" --ray-client-server-port "$((port + 2))" \
      --temp-dir "$base/head" --disable-usage-stats >/dev/null
    # Ray >= 2.59 heads use token auth: a second raylet joining by address must be told so
    if [ -f "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]; then export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"; fi
    # its own temp dir: two raylets sharing one session dir unpack a job's working dir into the same folder
    # and delete it under each other's processes (measured with Ray 2.60)
    "$ray" start --address "127.0.0.1:$port" --node-ip-address 127.0.0.1 --num-cpus "$cpus" --num-gpus 0 \
      --resources '{"node_worker": 1}' --dashboard-agent-listen-port "$((port + 3))" --temp-dir "$base/second" >/dev/null
    echo "two-node Ray cluster up: GCS 127.0.0.1:$port, jobs http://127.0.0.1:$dashboard ($cpus CPUs per node)"
    ;;
  stop)
    # every Ray process of this cluster names its temp dir on its command line (GCS, raylets, dashboard, agents,
    # log monitors); workers rename theirs (ray::...), so they are found as the raylets' children
    pids="$(pgrep -f -- "$base/" || true)"
    if [ -n "$pids" ]; then
      children="$(for p in $pids; do pgrep -P "$p" || true; done)"
      kill -9 $pids $children 2>/dev/null || true
    fi
    echo "stopped"
    ;;
  *)
    echo "usage: $0 start [CPUS_PER_NODE] | stop" >&2
    exit 2
    ;;
esac
