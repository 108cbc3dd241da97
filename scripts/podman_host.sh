#!/usr/bin/env bash
# Writes a containers.conf that lets podman run on hosts like our CI machines, and prints the export line:
#   eval "$(bash scripts/podman_host.sh)"      # sets CONTAINERS_CONF for podman run / build / system service
# Why each setting (podman 4.3, Debian 12):
#   default_ulimits  podman's defaults exceed the host's hard limits ("setrlimit RLIMIT_NOFILE: Operation not
#                    permitted" without CAP_SYS_RESOURCE): use the host's hard limits, at most 4096.
#   netns = "host"   tasks reach a tracking server on 127.0.0.1 and pip reaches the proxy, as on the host.
#   runtime = "runc" crun refuses hybrid cgroups ("cgroups in hybrid mode not supported"); only if runc exists.
# The file lives in ${SPHEREREID_CACHE:-~/.cache/spherereid}; nothing under /etc is changed.
set -euo pipefail
cache=${SPHEREREID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spherereid}
mkdir -p "$cache"
conf="$cache/containers.conf"
limit() {  # min(hard limit, 4096); "unlimited" counts as 4096
  local hard=$1
  if [ "$hard" = "unlimited" ] || [ "$hard" -gt 4096 ]; then echo 4096; else echo "$hard"; fi
}
nofile=$(limit "$(ulimit -Hn)")
nproc=$(limit "$(ulimit -Hu)")
{
  echo "# written by scripts/podman_host.sh"
  echo "[containers]"
  echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
  echo "netns = \"host\""
  if command -v runc >/dev/null 2>&1; then
    echo "[engine]"
    echo "runtime = \"runc\""
  fi
} >"$conf"
echo "export CONTAINERS_CONF=$conf"
