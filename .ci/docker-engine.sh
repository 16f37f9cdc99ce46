#!/usr/bin/env bash
# Start, stop or inspect a local Docker engine for the serving-image checks.
#
#   .ci/docker-engine.sh start    # no-op if `docker info` already answers (a user's own Docker)
#   .ci/docker-engine.sh status
#   .ci/docker-engine.sh stop     # stops only an engine this checkout's script started (its pid file)
#   .ci/docker-engine.sh state-dir  # prints where this checkout keeps the engine's pid file and log
#
# The engine started here never creates Docker's default bridge (it would use a private
# address range, which must not carry traffic on these machines): dockerd runs with
# --bridge=none --iptables=false --ip-masq=false, so containers must use `--network host`.
#
# State (pid file, log, storage-driver file) is kept per checkout: by default in
# /tmp/dialsgate-docker-<first 12 hex of sha256 of this checkout's resolved path>, so `stop` run
# from one checkout (or worktree) can never stop an engine another checkout started. Outside the
# checkout on purpose: a copied checkout must not carry a pid file that points at the original's
# engine. (An engine started by an older version of this script kept its state in
# /tmp/pixelnmf-dials-docker: DOCKER_ENGINE_STATE=/tmp/pixelnmf-dials-docker stops that one.)
#
# Settings (environment):
#   DOCKER_ENGINE_STATE     state dir for log and pid file  (default: per checkout, see above)
#   DOCKER_STORAGE_DRIVER   force a storage driver          (default: overlay2 if an overlay
#                           mount works here, else vfs; overlay2 failing at start falls back to vfs)
#   DOCKER_ENGINE_TIMEOUT   seconds to wait for the engine  (default 60)
#   DOCKER_DATA_ROOT        dockerd --data-root              (default: dockerd's own, /var/lib/docker)
set -euo pipefail

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
checkout_hash() { printf '%s' "$CHECKOUT" | sha256sum | cut -c1-12; }
STATE_DIR="${DOCKER_ENGINE_STATE:-/tmp/dialsgate-docker-$(checkout_hash)}"
PID_FILE="$STATE_DIR/dockerd.pid"
LOG_FILE="$STATE_DIR/dockerd.log"
DRIVER_FILE="$STATE_DIR/storage-driver"
TIMEOUT="${DOCKER_ENGINE_TIMEOUT:-60}"

log() { printf '[docker-engine] %s\n' "$*" >&2; }
die() { printf '[docker-engine] ERROR: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

# PID from our pid file if that process is still a running dockerd, else nothing.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -d "/proc/$pid" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == dockerd ]] || return 1
    printf '%s\n' "$pid"
}

ensure_dockerd() {
    if command -v dockerd >/dev/null 2>&1; then
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "dockerd is not installed and installing it needs root (apt-get install docker.io)"
    command -v apt-get >/dev/null 2>&1 || die "dockerd is not installed and apt-get is not available"
    log "dockerd not found: installing Debian's docker.io (apt-get)"
    local before=""
    if command -v docker >/dev/null 2>&1; then before="$(command -v docker)"; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd is still not on PATH"
    # docker.io puts its client in /usr/bin/docker; an existing client earlier on PATH
    # (e.g. /usr/local/bin/docker) stays in front and negotiates the API version down.
    if [[ -n "$before" ]]; then
        log "docker client on PATH: $(command -v docker) (was $before before installing docker.io)"
    fi
}

overlay_works() {
    # overlay2 needs overlay mounts on the backing file system of the data root.
    local root="${DOCKER_DATA_ROOT:-/var/lib/docker}" probe
    mkdir -p "$root"
    probe="$(mktemp -d "$root/.overlay-probe.XXXXXX")"
    mkdir -p "$probe"/{lower,upper,work,merged}
    local ok=1
    if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
        umount "$probe/merged" || true
        ok=0
    fi
    rm -rf "$probe"
    return "$ok"
}

# Launch dockerd with the given storage driver; wait until it answers. 0 = up, 1 = not up.
launch() {
    local driver="$1" t0 pid
    local -a args=(--bridge=none --iptables=false --ip-masq=false --storage-driver="$driver")
    if [[ -n "${DOCKER_DATA_ROOT:-}" ]]; then args+=(--data-root="$DOCKER_DATA_ROOT"); fi
    log "starting dockerd ${args[*]} (log: $LOG_FILE)"
    printf '\n==== %s dockerd %s\n' "$(date -Is)" "${args[*]}" >>"$LOG_FILE"
    t0=$(date +%s.%N)
    # setsid: the engine must outlive this shell and its process group.
    setsid dockerd "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    local deadline=$(( $(date +%s) + TIMEOUT ))
    while (( $(date +%s) < deadline )); do
        if engine_answers; then
            printf '%s\n' "$driver" >"$DRIVER_FILE"
            log "engine up after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s (pid $pid, storage driver $driver)"
            return 0
        fi
        if ! running "$pid"; then
            log "dockerd (pid $pid) exited during start-up"
            rm -f "$PID_FILE"
            return 1
        fi
        sleep 0.5
    done
    log "dockerd (pid $pid) did not answer within ${TIMEOUT} s; stopping it"
    stop_pid "$pid"
    rm -f "$PID_FILE"
    return 1
}

# Running: it exists and has not exited. An engine that exited stays a zombie until init reaps it
# (it is nobody's child here), which can take seconds: it is gone already.
running() {
    kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do  # 30 s, looked at every 0.1 s (an engine stops in a fraction of one)
        running "$pid" || return 0
        sleep 0.1
    done
    log "dockerd (pid $pid) still running after 30 s: sending SIGKILL to it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        running "$pid" || return 0
        sleep 0.5
    done
    return 1
}

cmd_start() {
    local pid
    command -v docker >/dev/null 2>&1 || die "the docker client is not installed"
    if engine_answers; then
        if pid="$(our_pid)"; then
            log "engine already running (started by this script, pid $pid)"
        else
            log "a Docker engine already answers (not started by this script): leaving it alone"
        fi
        return 0
    fi
    if [[ -f "$PID_FILE" ]] && pid="$(our_pid)"; then
        die "dockerd pid $pid (from $PID_FILE) is running but does not answer; see $LOG_FILE or run '$0 stop'"
    fi
    rm -f "$PID_FILE"
    [[ "$(id -u)" == 0 ]] || die "starting dockerd needs root; start your Docker engine yourself"
    ensure_dockerd
    mkdir -p "$STATE_DIR"
    printf '%s\n' "$CHECKOUT" >"$STATE_DIR/checkout"

    local driver="${DOCKER_STORAGE_DRIVER:-}"
    if [[ -z "$driver" ]]; then
        if overlay_works; then driver=overlay2; else
            driver=vfs
            log "overlay mounts do not work here: using the vfs storage driver (slow, uses more disk)"
        fi
    fi
    if launch "$driver"; then return 0; fi
    if [[ -z "${DOCKER_STORAGE_DRIVER:-}" && "$driver" != vfs ]]; then
        log "retrying with the vfs storage driver"
        if launch vfs; then return 0; fi
    fi
    log "last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    die "could not start the Docker engine"
}

cmd_stop() {
    if [[ ! -f "$PID_FILE" ]]; then
        log "no pid file ($PID_FILE): no engine started by this script; nothing to stop"
        return 0
    fi
    local pid
    if ! pid="$(our_pid)"; then
        log "pid file present but its process is not a running dockerd: removing the stale pid file"
        rm -f "$PID_FILE"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    stop_pid "$pid" || die "dockerd (pid $pid) did not exit"
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid=""
    pid="$(our_pid || true)"
    if engine_answers; then
        local info
        info="$(docker info --format 'server {{.ServerVersion}}, storage driver {{.Driver}}, {{.Images}} images, {{.ContainersRunning}} running containers' 2>/dev/null || echo 'answers')"
        if [[ -n "$pid" ]]; then
            echo "running: $info; started by this script, pid $pid ($PID_FILE), log $LOG_FILE"
        else
            echo "running: $info; not started by this script"
        fi
        return 0
    fi
    if [[ -n "$pid" ]]; then
        echo "dockerd pid $pid ($PID_FILE) is alive but does not answer; log $LOG_FILE"
        return 1
    fi
    echo "not running"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    state-dir) printf '%s\n' "$STATE_DIR" ;;
    *) echo "usage: $0 start|stop|status|state-dir" >&2; exit 2 ;;
esac
