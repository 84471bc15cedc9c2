#!/usr/bin/env bash
# Builds the container images the tests deploy, with no registry: each is a `podman import` of a
# tarball holding Debian's static busybox, whose httpd serves a health endpoint.
#   localhost/driftless-web:1    /healthz and /version answer "1"
#   localhost/driftless-web:2    /healthz and /version answer "2"
#   localhost/driftless-web:bad  /version answers "bad"; /healthz is missing (HTTP 404), so an
#                                HTTP health check fails while the container keeps running
# Idempotent: an image is rebuilt only when missing or built by an older recipe (FIXTURE_REV).
set -euo pipefail

# Bump when the recipe below changes, so existing machines rebuild instead of keeping stale images.
FIXTURE_REV=2
BUSYBOX=/bin/busybox
REPO=localhost/driftless-web

log() { printf 'build-test-images: %s\n' "$*" >&2; }

if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  log "busybox-static is not installed; run scripts/setup-system.sh"
  exit 1
fi

image_current() {
  local rev
  rev=$(podman image inspect --format '{{ index .Labels "io.driftless.fixture-rev" }}' "$1" 2>/dev/null) || return 1
  [ "$rev" = "$FIXTURE_REV" ]
}

build_image() {
  local tag=$1 healthz=$2
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $work now: it is local to this call
  trap "rm -rf '$work'" RETURN
  local root=$work/root
  mkdir -p "$root/bin" "$root/www" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  # Every applet as a relative symlink, so `sh`, `cat`, `wget` … work inside the container
  # (command health checks and exec use them).
  local applet
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  printf '%s' "$tag" >"$root/www/version"
  if [ "$healthz" = yes ]; then
    printf '%s' "$tag" >"$root/www/healthz"
  fi
  # Tells the images apart from inside a container too (exec `cat /etc/driftless-test-image`).
  printf '%s:%s\n' "$REPO" "$tag" >"$root/etc/driftless-test-image"

  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .
  # httpd runs as PID 1 and installs no SIGTERM handler, so the kernel drops a SIGTERM and every
  # stop would wait out its whole timeout; SIGKILL as the stop signal keeps stops instant.
  podman import --quiet \
    --change 'STOPSIGNAL SIGKILL' \
    --change 'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]' \
    --change 'EXPOSE 8080' \
    --change "LABEL io.driftless.test-image=$tag" \
    --change "LABEL io.driftless.fixture-rev=$FIXTURE_REV" \
    --message "driftless test image $tag" \
    "$work/rootfs.tar" "$REPO:$tag" >/dev/null
  log "built $REPO:$tag"
}

for spec in 1:yes 2:yes bad:no; do
  tag=${spec%%:*}
  healthz=${spec#*:}
  if image_current "$REPO:$tag"; then
    log "$REPO:$tag is up to date"
  else
    build_image "$tag" "$healthz"
  fi
done
