# syntax=docker/dockerfile:1
# Dream.OS in a container: `docker build -t dreamos .`, then see deploy/compose.yaml.
#
# Build stage: the release binary. Everything C it needs (Lua, SQLite) is vendored and
# compiled by cc; TLS is rustls, so no OpenSSL.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dreamos \
    && cp target/release/dreamos /usr/local/bin/dreamos

# Runtime stage: a slim Debian with the binary, the shipped scripts and a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 dreamos \
    && useradd --system --uid 10001 --gid dreamos --home-dir /app --shell /usr/sbin/nologin dreamos \
    && mkdir -p /app /data /logs \
    && chown dreamos:dreamos /data /logs \
    && chmod 0700 /data /logs
COPY --from=build /usr/local/bin/dreamos /usr/local/bin/dreamos
COPY dreamos.toml /app/dreamos.toml
COPY scripts /app/scripts
WORKDIR /app

# The configuration's relative paths are replaced by the volumes; the daemon listens on
# all interfaces inside the container (publish the port only where it should be reached).
# Mount your own dreamos.toml over /app/dreamos.toml to configure agents and schedules.
ENV DREAMOS_CONFIG=/app/dreamos.toml \
    DREAMOS_RUNTIME_DATA_DIR=/data \
    DREAMOS_STORE_PATH=/data/dreamos.db \
    DREAMOS_LOG_DIR=/logs \
    DREAMOS_LOG_CONSOLE=compact \
    DREAMOS_DAEMON_LISTEN=0.0.0.0 \
    DREAMOS_DAEMON_PORT=7878

# The database, the control token and state live in /data; JSON-lines logs in /logs.
VOLUME ["/data", "/logs"]
EXPOSE 7878
USER dreamos:dreamos

# /health answers without the token. The image has no curl: bash's /dev/tcp does the GET.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${DREAMOS_DAEMON_PORT} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["dreamos"]
CMD ["serve"]
