#!/usr/bin/env bash
# Installs the system programs the test suite drives for real (a browser for UI/report tests).
# Runs apt-get only as root and only for what is missing; otherwise says what to install.
set -euo pipefail
needed=()
[ -x /usr/bin/chromium ] || needed+=(chromium)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${needed[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" >/dev/null
else
  echo "missing system packages: ${needed[*]} — install them (e.g. sudo apt-get install ${needed[*]}); tests that need them are skipped"
fi
