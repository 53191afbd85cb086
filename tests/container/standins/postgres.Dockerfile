# Test stand-in for postgres:16-alpine (no registry here): Debian's PostgreSQL 15 on the local bookworm base,
# with an entrypoint that honours POSTGRES_USER / POSTGRES_PASSWORD(_FILE) / POSTGRES_DB, PGDATA and a non-root
# user like the official image, so docker-compose.yml runs unchanged (its healthcheck calls pg_isready).
ARG BASE_IMAGE=localhost/fairsynth-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/lib/postgresql/15
ENV PATH=/usr/lib/postgresql/15/bin:${PATH} PGDATA=/var/lib/postgresql/data
# owned by postgres, as in the official image: a new named volume takes this owner (`user: postgres`)
# and its socket folder writable by postgres (podman copies it into the tmpfs compose mounts there)
RUN mkdir -p /var/lib/postgresql/data && chown postgres:postgres /var/lib/postgresql/data && chmod 700 /var/lib/postgresql/data \
 && mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql && chmod 3777 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
ENTRYPOINT ["sh", "/usr/local/bin/postgres-entrypoint.sh"]
