# Test stand-in for redis:7-alpine (no registry here): Debian's redis-server on the local bookworm base;
# redis-cli is inside for docker-compose.yml's healthcheck (`redis-cli ping`).
ARG BASE_IMAGE=localhost/fairsynth-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
USER redis
EXPOSE 6379
ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
