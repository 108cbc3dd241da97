#!/usr/bin/env bash
# Builds the runtime image from the Dockerfile and prints its reference on stdout (progress on stderr).
#   bash scripts/build_image.sh [--tag REF] [--verbose]
# - Engine: docker when a daemon answers, else podman (SPHEREREID_ENGINE=docker|podman forces one). With
#   podman and no CONTAINERS_CONF, it uses the one scripts/podman_host.sh writes (ulimits, runc, host network).
# - Tag: localhost/spherereid:<short commit> (immutable: the KFP cache keys on the image string), with
#   -dirty appended when files that go into the image differ from that commit. --tag overrides it.
# - Base: the Dockerfile's python:3.11.14-slim-bookworm (SPHEREREID_BASE_IMAGE overrides it) if present or
#   pullable; else a Debian 12 stand-in built with mmdebstrap from Debian's packages (it says so).
# - A CA bundle configured for pip (PIP_CERT, `pip config get global.cert`, else SSL_CERT_FILE) is passed as
#   the build secret pip_ca, for pip behind a TLS-intercepting proxy.
# - The whole build log goes to $SPHEREREID_CACHE/build.log; a failed build prints its last 40 lines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${SPHEREREID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spherereid}
mkdir -p "$cache"
tag="" verbose=0
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --verbose) verbose=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "[build_image] $*" >&2; }

pick_engine() {
  if [ -n "${SPHEREREID_ENGINE:-}" ]; then echo "$SPHEREREID_ENGINE"; return; fi
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null 2>&1; then echo podman; return; fi
  echo "error: no container engine: start a Docker daemon, or install podman (Debian: apt-get install" \
    "podman runc mmdebstrap)" >&2
  exit 2
}

default_tag() {
  if ! git rev-parse --git-dir >/dev/null 2>&1; then
    echo "error: not a git checkout: pass --tag REF (an immutable tag)" >&2; exit 2
  fi
  local suffix=""
  if [ -n "$(git status --porcelain -- Dockerfile requirements.txt constraints.txt pyproject.toml model)" ]; then
    suffix="-dirty"
  fi
  echo "localhost/spherereid:$(git rev-parse --short=12 HEAD)$suffix"
}

image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }

standin_base() {  # Debian 12 with python3 + venv + CA certificates, from Debian's packages (no registry)
  local name=localhost/spherereid-base:bookworm
  if image_exists "$name"; then say "base: reusing the Debian 12 stand-in $name"; echo "$name"; return; fi
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "error: base image $base cannot be pulled and mmdebstrap is missing to build a stand-in" \
      "(Debian: apt-get install mmdebstrap), or set SPHEREREID_BASE_IMAGE to a reachable image" >&2
    exit 2
  fi
  say "base: $base cannot be pulled; building a Debian 12 stand-in $name with mmdebstrap (~30 s)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates bookworm - \
    | "$engine" import --change 'CMD ["/bin/bash"]' - "$name" >/dev/null
  echo "$name"
}

resolve_base() {
  if image_exists "$base"; then echo "$base"; return; fi
  if "$engine" pull "$base" >/dev/null 2>&1; then say "base: pulled $base"; echo "$base"; return; fi
  standin_base
}

pip_ca() {
  local ca=${PIP_CERT:-}
  if [ -z "$ca" ] && command -v pip >/dev/null 2>&1; then ca=$(pip config get global.cert 2>/dev/null || true); fi
  [ -z "$ca" ] && ca=${SSL_CERT_FILE:-}
  if [ -n "$ca" ] && [ -s "$ca" ]; then echo "$ca"; fi
}

engine=$(pick_engine)
if [ "$engine" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  eval "$(bash "$root/scripts/podman_host.sh")"
  say "podman: using $CONTAINERS_CONF (from scripts/podman_host.sh)"
fi
[ -n "$tag" ] || tag=$(default_tag)
base=${SPHEREREID_BASE_IMAGE:-python:3.11.14-slim-bookworm}
start=$SECONDS
base=$(resolve_base)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)
source_url=$(git remote get-url origin 2>/dev/null || echo unknown)
args=(build -t "$tag" -f Dockerfile
  --build-arg "BASE_IMAGE=$base" --build-arg "GIT_COMMIT=$commit"
  --build-arg "VERSION=$version" --build-arg "SOURCE_URL=$source_url"
  --label "org.opencontainers.image.revision=$commit" --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.source=$source_url")
# podman 4.3 (buildah 1.28) reuses cached ARG/ENV/LABEL layers whatever the --build-arg values, so a new
# commit would keep the old commit's label and SPHEREREID_GIT_COMMIT: set both on the final image as well.
[ "$engine" = podman ] && args+=(--env "SPHEREREID_GIT_COMMIT=$commit")
ca=$(pip_ca)
if [ -n "$ca" ]; then args+=(--secret "id=pip_ca,src=$ca"); say "pip CA bundle: $ca (build secret pip_ca)"; fi
[ "$engine" = podman ] && args+=(--pull=never)
log="$cache/build.log"
say "building $tag with $engine on $base (log: $log)"
rc=0
if [ "$verbose" = 1 ]; then
  "$engine" "${args[@]}" . 2>&1 | tee "$log" >&2 || rc=${PIPESTATUS[0]}
else
  "$engine" "${args[@]}" . >"$log" 2>&1 || rc=$?
fi
if [ "$rc" -ne 0 ] || ! image_exists "$tag"; then
  say "build of $tag FAILED (exit $rc); last lines of $log:"
  tail -n 40 "$log" >&2
  exit 1
fi
size=$("$engine" image inspect --format '{{.Size}}' "$tag")
say "built $tag in $((SECONDS - start)) s; size $(awk -v b="$size" 'BEGIN {printf "%.2f GB", b / 1e9}')"
echo "$tag"
