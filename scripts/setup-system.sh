#!/usr/bin/env bash
# Installs and configures the real parts the tests use (see ENGINEERING.md, "Real parts on this
# machine"): Podman serving the Docker Engine API, network tools, PostgreSQL, and the local test
# images. Run as root on Debian 12. Idempotent, and quick when everything is already in place, so
# CI and developers can run it before every test run.
set -euo pipefail

# DRIFTLESS_PODMAN_SOCKET moves the service (test/support/podman.ts reads the same variable).
PODMAN_SOCK=${DRIFTLESS_PODMAN_SOCKET:-/run/podman/podman.sock}
PODMAN_LOG=/var/log/driftless-podman-service.log
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'setup-system: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs packages and starts the Podman service)"
  exit 1
fi

# --- packages ---------------------------------------------------------------------------------
# Asked of dpkg rather than of the PATH: `busybox` on the PATH may be the dynamically linked
# package, and the test images need the static one.
# python3, make and g++ build node-pty (the agent's terminal) when npm installs it; chromium is
# the browser the dashboard's tests drive (playwright-core, test/support/browser.ts).
packages=(podman runc netavark aardvark-dns busybox-static iproute2 nftables iptables tmux postgresql curl ca-certificates wrk python3 make g++ chromium)
missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y "${missing[@]}"
else
  log "packages already installed"
fi

# --- Podman configuration ---------------------------------------------------------------------
# crun and Podman's default ulimits fail in this sandbox; systemd is absent, so cgroupfs and a
# plain events file instead of journald.
containers_conf='[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
'
conf_changed=0
mkdir -p /etc/containers
if [ ! -f /etc/containers/containers.conf ] || [ "$(cat /etc/containers/containers.conf)" != "$(printf '%s' "$containers_conf")" ]; then
  printf '%s' "$containers_conf" >/etc/containers/containers.conf
  conf_changed=1
  log "wrote /etc/containers/containers.conf"
fi

# --- Podman service (Docker Engine API) ---------------------------------------------------------
podman_answers() {
  curl -fsS --max-time 2 --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null 2>&1
}

if podman_answers; then
  if [ "$conf_changed" = 1 ]; then
    log "warning: the Podman service was already running and still uses the old configuration; stop it and rerun this script"
  fi
  log "Podman service answers on $PODMAN_SOCK"
else
  mkdir -p "$(dirname "$PODMAN_SOCK")"
  # A socket file left by a dead service would make the new one fail to bind.
  rm -f "$PODMAN_SOCK"
  log "starting podman system service on $PODMAN_SOCK (log: $PODMAN_LOG)"
  # setsid + nohup: the service must outlive this script and the CI step that ran it.
  setsid nohup podman system service --time=0 "unix://$PODMAN_SOCK" </dev/null >>"$PODMAN_LOG" 2>&1 &
  for _ in $(seq 1 150); do
    podman_answers && break
    sleep 0.2
  done
  if ! podman_answers; then
    log "the Podman service did not answer within 30 s; last lines of $PODMAN_LOG:"
    tail -n 20 "$PODMAN_LOG" >&2 || true
    exit 1
  fi
  log "Podman service answers on $PODMAN_SOCK"
fi

# --- test images --------------------------------------------------------------------------------
bash "$SCRIPT_DIR/build-test-images.sh"
