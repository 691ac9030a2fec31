# scripts/lib/etcd_cluster.sh — a throwaway 3-member etcd cluster on loopback (bash; source it).
#
#   source scripts/lib/etcd_cluster.sh
#   trap cluster_stop EXIT
#   cluster_start || exit 1        # sets CLUSTER_ENDPOINTS (a,b,c), CLUSTER_DIR, CLUSTER_PID[i], CLUSTER_CLIENT[i]
#   cluster_leader                 # prints the index (0..2) of the current leader
#   cluster_kill 1; cluster_revive 1 || exit 1
#
# Members come from PATH (etcd), listen on free loopback ports only, and keep their
# data and logs in one fresh temp dir. Every member is stopped by pid (SIGKILL, as a
# crash would); cluster_stop kills them all and removes the dir; it is safe to call
# twice and from an EXIT trap. One cluster per shell.

CLUSTER_DIR=
CLUSTER_ENDPOINTS=
CLUSTER_SIZE=3
CLUSTER_PID=()
CLUSTER_CLIENT=()
CLUSTER_PEER=()
CLUSTER_INITIAL=

cluster_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cluster_spawn i state: starts member i ("new" or "existing" cluster state).
cluster_spawn() {
  local i=$1 state=$2
  # Elections: 100 ms heartbeats, 1 s election timeout — quick, yet calm on a loaded machine.
  etcd --name "m$i" --data-dir "$CLUSTER_DIR/m$i" \
    --listen-client-urls "http://${CLUSTER_CLIENT[$i]}" --advertise-client-urls "http://${CLUSTER_CLIENT[$i]}" \
    --listen-peer-urls "http://${CLUSTER_PEER[$i]}" --initial-advertise-peer-urls "http://${CLUSTER_PEER[$i]}" \
    --initial-cluster "$CLUSTER_INITIAL" --initial-cluster-state "$state" --initial-cluster-token "conch-drills-$$" \
    --heartbeat-interval 100 --election-timeout 1000 --logger zap --log-level warn \
    >>"$CLUSTER_DIR/m$i.log" 2>&1 </dev/null &
  CLUSTER_PID[$i]=$!
}

# cluster_health ep [timeout]: 0 once the member at ep answers a quorum read.
cluster_health() {
  ETCDCTL_API=3 etcdctl --endpoints "$1" --dial-timeout 1s --command-timeout "${2:-2}s" endpoint health >/dev/null 2>&1
}

# cluster_wait_healthy [timeout=30]: every running member serves.
cluster_wait_healthy() {
  local deadline=$((SECONDS + ${1:-30})) i ok
  while ((SECONDS < deadline)); do
    ok=1
    for ((i = 0; i < CLUSTER_SIZE; i++)); do
      [[ -n ${CLUSTER_PID[$i]} ]] || continue
      cluster_health "${CLUSTER_CLIENT[$i]}" || { ok=0; break; }
    done
    ((ok)) && return 0
    sleep 0.1
  done
  return 1
}

# cluster_start: three members, healthy, or an error (with log tails) and 1.
cluster_start() {
  if [[ -n $CLUSTER_DIR ]]; then
    echo "cluster_start: a cluster is already running" >&2
    return 1
  fi
  if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    echo "cluster_start: etcd and etcdctl must be on PATH (scripts/setup installs them)" >&2
    return 1
  fi
  CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/conch-cluster.XXXXXX") || return 1
  local attempt i
  for attempt in 1 2 3; do
    CLUSTER_INITIAL=
    for ((i = 0; i < CLUSTER_SIZE; i++)); do
      CLUSTER_CLIENT[$i]=127.0.0.1:$(cluster_free_port) && CLUSTER_PEER[$i]=127.0.0.1:$(cluster_free_port) || return 1
      CLUSTER_INITIAL+="${CLUSTER_INITIAL:+,}m$i=http://${CLUSTER_PEER[$i]}"
    done
    for ((i = 0; i < CLUSTER_SIZE; i++)); do cluster_spawn "$i" new; done
    CLUSTER_ENDPOINTS=$(IFS=,; echo "${CLUSTER_CLIENT[*]}")
    if cluster_wait_healthy 30; then return 0; fi
    # A port taken by someone else between the probe and etcd's bind: try fresh ports.
    for ((i = 0; i < CLUSTER_SIZE; i++)); do cluster_kill "$i"; rm -rf "$CLUSTER_DIR/m$i"; done
  done
  echo "cluster_start: the cluster did not become healthy; log tails:" >&2
  for ((i = 0; i < CLUSTER_SIZE; i++)); do tail -n 5 "$CLUSTER_DIR/m$i.log" >&2 2>/dev/null; done
  cluster_stop
  return 1
}

# cluster_kill i: SIGKILL member i by pid and reap it. Its data stays.
cluster_kill() {
  local i=$1
  [[ -n ${CLUSTER_PID[$i]} ]] || return 0
  kill -KILL "${CLUSTER_PID[$i]}" 2>/dev/null || true
  wait "${CLUSTER_PID[$i]}" 2>/dev/null || true
  CLUSTER_PID[$i]=
}

# cluster_revive i [timeout=30]: restarts member i on its ports and data; waits until it serves.
cluster_revive() {
  local i=$1 deadline=$((SECONDS + ${2:-30}))
  [[ -z ${CLUSTER_PID[$i]} ]] || return 0
  cluster_spawn "$i" existing
  while ((SECONDS < deadline)); do
    cluster_health "${CLUSTER_CLIENT[$i]}" && return 0
    kill -0 "${CLUSTER_PID[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster_revive: member m$i does not serve; log tail:" >&2
  tail -n 5 "$CLUSTER_DIR/m$i.log" >&2
  return 1
}

# cluster_leader: the index of the leader (asks the running members); empty if none.
cluster_leader() {
  local i
  for ((i = 0; i < CLUSTER_SIZE; i++)); do
    [[ -n ${CLUSTER_PID[$i]} ]] || continue
    ETCDCTL_API=3 etcdctl --endpoints "${CLUSTER_CLIENT[$i]}" --dial-timeout 1s --command-timeout 2s \
      endpoint status -w json 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; sys.exit(0 if s["header"]["member_id"] == s["leader"] else 1)' \
      2>/dev/null && { echo "$i"; return 0; }
  done
  return 1
}

# cluster_stop: kills every member by pid, removes the dir.
cluster_stop() {
  local i
  for ((i = 0; i < CLUSTER_SIZE; i++)); do cluster_kill "$i"; done
  if [[ -n $CLUSTER_DIR && -d $CLUSTER_DIR ]]; then rm -rf "$CLUSTER_DIR"; fi
  CLUSTER_DIR= CLUSTER_ENDPOINTS=
  CLUSTER_PID=() CLUSTER_CLIENT=() CLUSTER_PEER=()
  return 0
}
