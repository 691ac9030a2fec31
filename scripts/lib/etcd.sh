# scripts/lib/etcd.sh — a throwaway single-member etcd for scripts (bash; source it).
#
#   source scripts/lib/etcd.sh
#   trap etcd_stop EXIT
#   etcd_start || exit 1            # sets ETCD_ENDPOINT (127.0.0.1:PORT), ETCD_PID, ETCD_DIR
#   etcdctl --endpoints "$ETCD_ENDPOINT" put k v
#
# etcd comes from PATH and listens on free loopback ports only; its data and log
# live in a fresh temp dir. etcd_stop kills it by pid (SIGKILL) and removes the
# dir; it is safe to call twice and from an EXIT trap. One etcd per shell.

ETCD_PID=
ETCD_DIR=
ETCD_ENDPOINT=

# A free loopback TCP port. Another process may take it before etcd binds it,
# which etcd_start handles by retrying on fresh ports.
etcd_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# etcd_start [timeout_seconds=20]: starts etcd and waits until it serves.
# On failure prints why (with the log's tail) to stderr and returns 1.
etcd_start() {
  local timeout=${1:-20}
  if [[ -n $ETCD_PID ]]; then
    echo "etcd_start: etcd already running (pid $ETCD_PID)" >&2
    return 1
  fi
  if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    echo "etcd_start: etcd and etcdctl must be on PATH (scripts/setup installs them)" >&2
    return 1
  fi
  ETCD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/conch-etcd.XXXXXX") || return 1
  local attempt client peer deadline
  for attempt in 1 2 3; do
    client=$(etcd_free_port) && peer=$(etcd_free_port) || return 1
    etcd --name conch --data-dir "$ETCD_DIR/data" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "conch=http://127.0.0.1:$peer" --initial-cluster-state new \
      --heartbeat-interval 10 --election-timeout 100 --logger zap --log-level warn \
      >>"$ETCD_DIR/etcd.log" 2>&1 </dev/null &
    ETCD_PID=$!
    ETCD_ENDPOINT=127.0.0.1:$client
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)) && kill -0 "$ETCD_PID" 2>/dev/null; do
      if ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINT" --dial-timeout 1s --command-timeout 2s \
          endpoint health >/dev/null 2>&1; then
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$ETCD_PID" 2>/dev/null; then
      echo "etcd_start: etcd (pid $ETCD_PID) did not become healthy within ${timeout}s" >&2
      break
    fi
    wait "$ETCD_PID" 2>/dev/null || true
    ETCD_PID=
    rm -rf "$ETCD_DIR/data"  # exited early (most likely a port was taken): try fresh ports
  done
  echo "etcd_start: could not start etcd; log tail:" >&2
  tail -n 20 "$ETCD_DIR/etcd.log" >&2 2>/dev/null || true
  etcd_stop
  return 1
}

# etcd_stop: kills our etcd by pid, reaps it, removes its dir.
etcd_stop() {
  if [[ -n $ETCD_PID ]]; then
    kill -KILL "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
  fi
  if [[ -n $ETCD_DIR && -d $ETCD_DIR ]]; then
    rm -rf "$ETCD_DIR"
  fi
  ETCD_PID= ETCD_DIR= ETCD_ENDPOINT=
  return 0
}
