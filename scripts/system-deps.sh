#!/usr/bin/env bash
# Installs the system programs the test suite drives for real: a browser, PostgreSQL, Redis, podman.
# Runs apt-get only as root and only for what is missing; otherwise says what to install.
set -euo pipefail
needed=()
[ -x /usr/bin/chromium ] || needed+=(chromium)                        # browser tests (report, UI)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || needed+=(postgresql)  # job store on PostgreSQL
command -v redis-server >/dev/null || needed+=(redis-server)          # Celery broker
for tool in podman buildah debootstrap runc; do                      # building and running the image
  command -v $tool >/dev/null || [ -x /usr/sbin/$tool ] || needed+=($tool)
done
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${needed[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" >/dev/null
else
  echo "missing system packages: ${needed[*]} — install them (e.g. sudo apt-get install ${needed[*]}); tests that need them are skipped"
fi
