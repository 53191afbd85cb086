# syntax=docker/dockerfile:1
# fairsynth: the whole product in one image. `docker run -p 127.0.0.1:8501:8501 -v fairsynth-data:/data fairsynth`
# gives the UI on the embedded defaults (SQLite job store, local executor); the same image runs the
# API (`serve`) and workers (`worker --queues ...`) in the compose stack.
#
# Build arguments:
#   BASE_IMAGE       a python:3.11-slim-like image (tests substitute a locally built one)
#   TORCH_INDEX_URL  the one index torch is installed from: the CPU index by default (the image then checks that
#                    torch has no CUDA); a CUDA index (e.g. https://download.pytorch.org/whl/cu128) for a GPU image.
#                    The build fails, in one sentence, when that index cannot be reached.
#   WITH_SDV         1 (default) installs the `sdv` extra (SDV and ctgan, BUSL-1.1); 0 leaves the sdv.* backends out
#   WITH_YDATA       1 (default) builds the isolated ydata-synthetic venv inside; 0 leaves it out
#   WITH_MOSTLY      1 builds the isolated MOSTLY AI venv inside (mostly.argn, mostly.argn.dp and the mostlyai-qa
#                    second evaluator; about 1.8 GB more); 0 (default) leaves it out, as the size goals assume
#   PIP_ARGS         extra pip options, e.g. "--no-index" with a local wheelhouse (see below)
#   VERSION, SOURCE  the OCI labels' version (pyproject's) and source repository URL (give it when publishing)
# A local wheelhouse can replace downloads: `--build-context wheels=DIR` (its files land in /wheels).
#
# Layers: torch first (its own step, one index), then the dependencies against pyproject.toml and constraints.txt
# alone (an editable install over empty package folders), so a code change rebuilds only the small code layers;
# pip's cache is a BuildKit cache mount, so a dependency change downloads only what changed. Each ARG is declared
# just before the step that reads it, so changing it rebuilds only from there.
# The image leaves out what only building C++ extensions or testing torch needs (torch/include, torch/test,
# tensorflow/include: ~370 MB); nothing here compiles extensions or uses torch.compile. The final stage copies the
# venvs as they are after these deletions.
ARG BASE_IMAGE=python:3.11-slim

FROM scratch AS wheels

FROM ${BASE_IMAGE} AS build
ARG PIP_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=wheels . /wheels/
WORKDIR /opt/fairsynth-app
COPY constraints.txt pyproject.toml ./
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# few retries: an unreachable index fails the build in about a minute instead of falling back to another index
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/fairsynth \
 && torch_pin="$(grep -E '^torch==' constraints.txt)" \
 && { /opt/fairsynth/bin/pip install --retries 1 --timeout 30 --index-url "${TORCH_INDEX_URL}" \
          --find-links /wheels ${PIP_ARGS} "${torch_pin}" \
      || { echo "Could not install ${torch_pin} from ${TORCH_INDEX_URL}: make that index reachable from the build or pass another with --build-arg TORCH_INDEX_URL=..." >&2; exit 1; }; } \
 && case "${TORCH_INDEX_URL}" in \
      */cpu) /opt/fairsynth/bin/python -c "import sys, torch; sys.exit(torch.version.cuda is not None and 'the CPU image got a CUDA torch build ' + torch.__version__)" ;; \
    esac
COPY scripts/package_folders.py scripts/
ARG WITH_SDV=1
# README.md (pyproject's readme) is a placeholder here and copied with the code: editing it rebuilds no dependencies.
# torch is already there and satisfies the pin, so this step never fetches another build of it.
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 scripts/package_folders.py \
 && touch README.md \
 && extras="" \
 && if [ "${WITH_SDV}" = "1" ]; then extras="${extras},sdv"; fi \
 && torch_before="$(/opt/fairsynth/bin/pip show torch | grep '^Version')" \
 && /opt/fairsynth/bin/pip install --find-links /wheels ${PIP_ARGS} -c constraints.txt -e ".${extras:+[${extras#,}]}" \
 && test "$(/opt/fairsynth/bin/pip show torch | grep '^Version')" = "${torch_before}" \
 && /opt/fairsynth/bin/pip check \
 && rm -rf /opt/fairsynth/lib/python3*/site-packages/torch/test /opt/fairsynth/lib/python3*/site-packages/torch/include
COPY requirements/ requirements/
COPY scripts/install-ydata.sh scripts/
ARG WITH_YDATA=1
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ "${WITH_YDATA}" = "1" ]; then \
        FAIRSYNTH_YDATA_VENV=/opt/fairsynth-ydata PIP_FIND_LINKS=/wheels PIP_ARGS="${PIP_ARGS}" \
        bash scripts/install-ydata.sh \
        && rm -rf /opt/fairsynth-ydata/lib/python3*/site-packages/tensorflow/include; \
    else mkdir -p /opt/fairsynth-ydata; fi
COPY scripts/install-mostly.sh scripts/
ARG WITH_MOSTLY=0
# The venv's pins name the CPU torch build (torch==2.13.0+cpu), which only the PyTorch CPU index serves (a --no-index
# build takes it from /wheels). triton (1 GB) comes only with xgrammar, for the engine's language models: the
# tabular models never import it, so the image leaves it out, with torch's C++ headers and tests.
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ "${WITH_MOSTLY}" = "1" ]; then \
        FAIRSYNTH_MOSTLY_VENV=/opt/fairsynth-mostly PIP_FIND_LINKS=/wheels \
        PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu ${PIP_ARGS}" \
        bash scripts/install-mostly.sh \
        && /opt/fairsynth-mostly/bin/pip uninstall -q -y triton \
        && rm -rf /opt/fairsynth-mostly/lib/python3*/site-packages/torch/test \
                  /opt/fairsynth-mostly/lib/python3*/site-packages/torch/include; \
    else mkdir -p /opt/fairsynth-mostly; fi

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE=""
LABEL org.opencontainers.image.title="fairsynth" \
      org.opencontainers.image.description="Synthetic health tables from several generator backends, evaluated and packaged as FAIR RO-Crates" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/fairsynth/bin:${PATH} \
    FAIRSYNTH_DATA_DIR=/data \
    FAIRSYNTH_YDATA_VENV=/opt/fairsynth-ydata \
    FAIRSYNTH_MOSTLY_VENV=/opt/fairsynth-mostly \
    FAIRSYNTH_IN_CONTAINER=1 \
    HOME=/home/fairsynth \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    MPLCONFIGDIR=/tmp/matplotlib
# /data is group-writable with the setgid bit: files a container writes there stay usable by the folder's group
RUN useradd --create-home --uid 10001 --user-group fairsynth \
 && mkdir -p /data && chown fairsynth:fairsynth /data && chmod 2775 /data
COPY --from=build /opt/fairsynth /opt/fairsynth
COPY --from=build /opt/fairsynth-ydata /opt/fairsynth-ydata
COPY --from=build /opt/fairsynth-mostly /opt/fairsynth-mostly
COPY --from=build /opt/fairsynth-app /opt/fairsynth-app
COPY backends/ /opt/fairsynth-app/backends/
COPY metadata/ /opt/fairsynth-app/metadata/
COPY services/ /opt/fairsynth-app/services/
COPY ui/ /opt/fairsynth-app/ui/
COPY fairsynth/ /opt/fairsynth-app/fairsynth/
COPY README.md /opt/fairsynth-app/README.md
COPY scripts/container-entrypoint.sh scripts/container_healthcheck.py /opt/fairsynth-app/scripts/
USER fairsynth
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8501 8000
# probes what the container runs: the UI's or the API's health URL on the port its command line gives
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python3", "/opt/fairsynth-app/scripts/container_healthcheck.py"]
ENTRYPOINT ["sh", "/opt/fairsynth-app/scripts/container-entrypoint.sh"]
CMD ["ui", "--address", "0.0.0.0", "--port", "8501"]
