#!/usr/bin/env bash
# A local Ballista cluster for trying `mle sql --cluster` and for tests: one mle-scheduler and
# N mle-executor processes on 127.0.0.1.
#
#   scripts/cluster.sh start [N]   # build (release) and start 1 scheduler + N executors (default 2)
#   scripts/cluster.sh status      # which of them are running
#   scripts/cluster.sh stop        # stop the processes this script started
#
# Environment:
#   MLE_CLUSTER_DIR   state, logs and executor work dirs (default: $TMPDIR/mle-cluster)
#   MLE_SCHEDULER_PORT  scheduler port (default 50050); executor i uses PORT+1+2i (Arrow
#                       Flight) and PORT+2+2i (gRPC)
#   MLE_CONCURRENCY   tasks per executor (default: cores / N, at least 1)
#   MLE_PUBLIC_KEY    if set, scheduler and executors refuse models not signed by this key
#   MLE_BIN_DIR       use these mle-scheduler / mle-executor binaries instead of building
#   CARGO_TARGET_DIR  where cargo builds them (default ~/.cache/mle-target)
#
# Then: mle sql --cluster df://127.0.0.1:50050 "SELECT ..." --table t=/abs/path/data
# Models and tables must be given as paths every process can read (absolute paths here).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${MLE_CLUSTER_DIR:-${TMPDIR:-/tmp}/mle-cluster}"
port="${MLE_SCHEDULER_PORT:-50050}"
cmd="${1:-}"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds log pid
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    if ! kill -0 "$4" 2>/dev/null; then
      echo "process $4 exited; see $3" >&2
      tail -n 20 "$3" >&2 || true
      return 1
    fi
    if in_use "$1"; then return 0; fi
    sleep 0.1
  done
  echo "port $1 not open after $2 s; see $3" >&2
  tail -n 20 "$3" >&2 || true
  return 1
}

case "$cmd" in
start)
  n="${2:-2}"
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, got '$n'" >&2; exit 2; }
  if alive "$dir/scheduler.pid"; then
    echo "a cluster is already running (pid $(cat "$dir/scheduler.pid")); run '$0 stop' first" >&2
    exit 1
  fi
  if [ -n "${MLE_BIN_DIR:-}" ]; then
    bin="$MLE_BIN_DIR"
  else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mle-target}"
    cargo build --release -p mle-ballista --bin mle-scheduler --bin mle-executor >&2
    bin="$CARGO_TARGET_DIR/release"
  fi
  for b in mle-scheduler mle-executor; do
    [ -x "$bin/$b" ] || { echo "no $bin/$b (build: cargo build --release -p mle-ballista)" >&2; exit 1; }
  done
  for ((p = port; p <= port + 2 * n; p++)); do
    if in_use "$p"; then
      echo "port $p on 127.0.0.1 is in use (another cluster?); set MLE_SCHEDULER_PORT" >&2
      exit 1
    fi
  done
  cores=$(nproc 2>/dev/null || echo 2)
  conc="${MLE_CONCURRENCY:-$(( cores / n > 0 ? cores / n : 1 ))}"
  key=()
  [ -n "${MLE_PUBLIC_KEY:-}" ] && key=(--public-key "$MLE_PUBLIC_KEY")
  mkdir -p "$dir"
  "$bin/mle-scheduler" --bind-host 127.0.0.1 --bind-port "$port" "${key[@]}" \
    >"$dir/scheduler.log" 2>&1 &
  echo $! >"$dir/scheduler.pid"
  # A process that does not come up: stop what was started, show its log.
  wait_port "$port" 30 "$dir/scheduler.log" "$(cat "$dir/scheduler.pid")" || { "$0" stop >&2; exit 1; }
  for ((i = 0; i < n; i++)); do
    flight=$((port + 1 + 2 * i)); grpc=$((port + 2 + 2 * i))
    "$bin/mle-executor" --bind-host 127.0.0.1 --port "$flight" --grpc-port "$grpc" \
      --scheduler-host 127.0.0.1 --scheduler-port "$port" \
      --work-dir "$dir/executor-$i" --concurrency "$conc" "${key[@]}" \
      >"$dir/executor-$i.log" 2>&1 &
    echo $! >"$dir/executor-$i.pid"
    wait_port "$flight" 30 "$dir/executor-$i.log" "$(cat "$dir/executor-$i.pid")" || { "$0" stop >&2; exit 1; }
  done
  echo "scheduler df://127.0.0.1:$port, $n executors ($conc tasks each); logs in $dir"
  ;;
stop)
  shopt -s nullglob
  for f in "$dir"/executor-*.pid "$dir"/scheduler.pid; do
    if alive "$f"; then
      pid=$(cat "$f")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "stopped $(basename "$f" .pid) (pid $pid)"
    fi
    rm -f "$f"
  done
  ;;
status)
  shopt -s nullglob
  found=0
  for f in "$dir"/scheduler.pid "$dir"/executor-*.pid; do
    [ -f "$f" ] || continue
    found=1
    if alive "$f"; then s=running; else s="not running"; fi
    echo "$(basename "$f" .pid): pid $(cat "$f") $s"
  done
  [ "$found" = 1 ] || echo "no cluster started from $dir"
  ;;
*)
  echo "usage: $0 start [N] | stop | status" >&2
  exit 2
  ;;
esac
