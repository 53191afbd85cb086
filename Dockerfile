# fairsynth: the whole product in one image. `docker run -p 8501:8501 -v fairsynth-data:/data fairsynth`
# gives the UI on the embedded defaults (SQLite job store, local executor); the same image runs the
# API (`serve`) and workers (`worker --queues ...`) in the compose stack.
#
# Build arguments:
#   BASE_IMAGE       a python:3.11-slim-like image (tests substitute a locally built one)
#   TORCH_INDEX_URL  where the torch wheel comes from: the CPU index by default; a CUDA index
#                    (e.g. https://download.pytorch.org/whl/cu128) for a GPU image; empty for PyPI only
#   WITH_YDATA       1 (default) builds the isolated ydata-synthetic venv inside; 0 leaves it out
#   PIP_ARGS         extra pip options, e.g. "--no-index" with a local wheelhouse (see below)
# A local wheelhouse can replace downloads: `--build-context wheels=DIR` (its files land in /wheels).
#
# Layers: the dependencies install against pyproject.toml and constraints.txt alone (an editable
# install over empty package folders), so a code change rebuilds only the small code layers.
ARG BASE_IMAGE=python:3.11-slim

FROM scratch AS wheels

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WITH_YDATA=1
ARG PIP_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=wheels . /wheels/
WORKDIR /opt/fairsynth-app
COPY constraints.txt pyproject.toml ./
COPY scripts/package_folders.py scripts/
# README.md (pyproject's readme) is a placeholder here and copied with the code: editing it rebuilds no dependencies
RUN python3 scripts/package_folders.py \
 && touch README.md \
 && python3 -m venv /opt/fairsynth \
 && /opt/fairsynth/bin/pip install --find-links /wheels ${TORCH_INDEX_URL:+--extra-index-url ${TORCH_INDEX_URL}} \
        ${PIP_ARGS} -c constraints.txt -e ".[sdv]" \
 && /opt/fairsynth/bin/pip check
COPY requirements/ requirements/
COPY scripts/ scripts/
RUN if [ "${WITH_YDATA}" = "1" ] && [ -f scripts/install-ydata.sh ]; then \
        FAIRSYNTH_YDATA_VENV=/opt/fairsynth-ydata PIP_FIND_LINKS=/wheels PIP_ARGS="${PIP_ARGS}" \
        bash scripts/install-ydata.sh; \
    else mkdir -p /opt/fairsynth-ydata; fi

FROM ${BASE_IMAGE}
ENV PATH=/opt/fairsynth/bin:${PATH} \
    FAIRSYNTH_DATA_DIR=/data \
    FAIRSYNTH_YDATA_VENV=/opt/fairsynth-ydata \
    HOME=/home/fairsynth \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --create-home --uid 10001 --user-group fairsynth \
 && mkdir -p /data && chown fairsynth:fairsynth /data
COPY --from=build /opt/fairsynth /opt/fairsynth
COPY --from=build /opt/fairsynth-ydata /opt/fairsynth-ydata
COPY --from=build /opt/fairsynth-app /opt/fairsynth-app
COPY backends/ /opt/fairsynth-app/backends/
COPY metadata/ /opt/fairsynth-app/metadata/
COPY services/ /opt/fairsynth-app/services/
COPY ui/ /opt/fairsynth-app/ui/
COPY fairsynth/ /opt/fairsynth-app/fairsynth/
COPY README.md /opt/fairsynth-app/README.md
USER fairsynth
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8501 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python3", "-c", "import os,urllib.request; port=os.environ.get('FAIRSYNTH_HEALTH_PORT','8501'); path='/_stcore/health' if port=='8501' else '/health'; urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=4)"]
ENTRYPOINT ["fairsynth"]
CMD ["ui", "--address", "0.0.0.0", "--port", "8501"]
