#!/bin/sh
# The image's entrypoint: check that the data folder is writable (a bind-mounted host folder often is not),
# keep what the container writes there group-writable, then run the fairsynth CLI with the container's command.
set -eu
umask 0002
data="${FAIRSYNTH_DATA_DIR:-/data}"
uid="$(id -u)"
unwritable=""
mkdir -p "$data" 2>/dev/null || unwritable="$data"
for folder in "$data" "$data/datasets" "$data/runs" "$data/logs"; do
    if [ -z "$unwritable" ] && [ -d "$folder" ] && [ ! -w "$folder" ]; then unwritable="$folder"; fi
done
if [ -n "$unwritable" ]; then
    echo "fairsynth: $unwritable is not writable by the container's user (uid $uid): give the mounted host folder to that user with \`sudo chown -R $uid <folder>\`, or run the container as the folder's owner with \`--user \$(id -u)\`." >&2
    exit 1
fi
exec fairsynth "$@"
