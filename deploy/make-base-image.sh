#!/usr/bin/env bash
# Makes the local base image `debian:bookworm` with debootstrap + buildah, for
# machines that can reach Debian's package archive but no container registry.
# It is stored as localhost/debian:bookworm (an existing
# docker.io/library/debian:bookworm counts as present, too).
#
#   deploy/make-base-image.sh            # no-op when the image already exists
#   SPINNET_BASE_FORCE=1 deploy/make-base-image.sh   # rebuild it
#
# The Debian mirror is the one this machine's apt uses (/etc/apt/sources.list
# or /etc/apt/sources.list.d/*.sources|*.list), so a local mirror or proxy is
# followed; $SPINNET_DEBIAN_MIRROR and $SPINNET_DEBIAN_SECURITY_MIRROR override.
# The image's /etc/apt/sources.list.d/debian.sources points at the same mirror.
# Needs root, debootstrap and buildah (apt-get install -y buildah debootstrap).
set -euo pipefail

IMAGE=debian:bookworm
SUITE=bookworm
BUILDAH=(buildah ${SPINNET_BUILDAH_OPTS:-})

die() { echo "make-base-image: error: $*" >&2; exit 1; }
log() { echo "make-base-image: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap needs it)"
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null ||
    die "$tool not found; install it: apt-get install -y buildah debootstrap"
done

# --- already there? ---------------------------------------------------------
have_image() {
  "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' 2>/dev/null |
    grep -qxE "(localhost/|docker\.io/library/)?${IMAGE}"
}
if [[ "${SPINNET_BASE_FORCE:-0}" != 1 ]] && have_image; then
  log "${IMAGE} already present; nothing to do"
  exit 0
fi

# --- the mirror apt uses here ---------------------------------------------------
# Prints the first URI serving suite $1 (component main) in apt's sources:
# deb822 files (Types/URIs/Suites/Enabled stanzas) and one-line "deb" files.
apt_mirror_for() {
  local suite=$1 f
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    awk -v want="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "") {
          n = split(suites, s, " ")
          for (i = 1; i <= n; i++) if (s[i] == want) { split(uris, u, " "); print u[1]; found = 1; exit }
        }
        types = uris = suites = ""; enabled = "yes"
      }
      BEGIN { enabled = "yes" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { line = $0; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line)
        if (key == "types") types = line
        else if (key == "uris") uris = line
        else if (key == "suites") suites = line
        else if (key == "enabled") enabled = tolower(line) }
      END { if (!found) flush() }' "$f"
  done | head -n1 | grep . && return 0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -E 's/\[[^]]*\]//' "$f" |
      awk -v want="$suite" '$1 == "deb" && $3 == want { print $2; exit }'
  done | head -n1 | grep . && return 0
  return 1
}

MIRROR=${SPINNET_DEBIAN_MIRROR:-$(apt_mirror_for "$SUITE" || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SPINNET_DEBIAN_SECURITY_MIRROR:-$(apt_mirror_for "${SUITE}-security" || true)}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}
MIRROR=${MIRROR%/}; SECURITY=${SECURITY%/}
log "mirror ${MIRROR} (security ${SECURITY})"

# --- debootstrap into a scratch dir ---------------------------------------------
WORK=$(mktemp -d /var/tmp/spinnet-base.XXXXXX)
ROOTFS=$WORK/rootfs
CTR=""
cleanup() {
  local rc=$?
  if [[ -n $CTR ]]; then
    "${BUILDAH[@]}" umount "$CTR" >/dev/null 2>&1 || true
    "${BUILDAH[@]}" rm "$CTR" >/dev/null 2>&1 || true
  fi
  # debootstrap mounts proc/sys inside the target; never rm through a mount.
  if [[ -d $ROOTFS ]]; then
    { findmnt -rn -o TARGET | grep -F "$ROOTFS/" | sort -r || true; } |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  rm -rf --one-file-system "$WORK" || log "could not remove $WORK"
  if ((rc != 0)); then log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT

log "debootstrap --variant=minbase ${SUITE} into ${ROOTFS}"
if ! timeout 1800 debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1; then
  tail -n 30 "$WORK/debootstrap.log" >&2 || true
  if [[ -f $ROOTFS/debootstrap/debootstrap.log ]]; then
    tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2 || true
  fi
  die "debootstrap failed (mirror ${MIRROR}); see the log lines above"
fi

# --- tidy the tree the way Debian's official images are ----------------------------
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${MIRROR}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${SECURITY}
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$ROOTFS/etc/apt/apt.conf.d/docker-gzip-indexes"
# A snapshot mirror serves Release files past their Valid-Until date; keep
# apt inside the image as lenient as the host's apt is.
if apt-config dump 2>/dev/null | grep -qiE '^Acquire::Check-Valid-Until "(false|0)"'; then
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
    >"$ROOTFS/etc/apt/apt.conf.d/99local-mirror"
fi
# Contents that belong to the build machine, not to the image.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/debootstrap
find "$ROOTFS/dev" -mindepth 1 -delete
: >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) debootstrap --variant=minbase ${SUITE} ${MIRROR}" \
  >"$ROOTFS/etc/spinnet-base-image"

# --- into an image --------------------------------------------------------------------
CTR=$("${BUILDAH[@]}" from scratch)
MNT=$("${BUILDAH[@]}" mount "$CTR")
cp -a "$ROOTFS/." "$MNT/"
"${BUILDAH[@]}" umount "$CTR" >/dev/null
"${BUILDAH[@]}" config \
  --os linux --arch "$(dpkg --print-architecture)" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd bash \
  --label org.opencontainers.image.description="Debian ${SUITE} minbase (debootstrap, ${MIRROR})" \
  "$CTR"
# Named localhost/ so that it never passes for Docker Hub's image; buildah
# resolves the Dockerfile's short name `debian:bookworm` to it locally.
"${BUILDAH[@]}" commit --quiet --rm "$CTR" "localhost/$IMAGE" >/dev/null
CTR=""
have_image || die "commit of ${IMAGE} did not produce the image"
log "made $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' | grep -E "^localhost/${IMAGE} " | head -n1)"
