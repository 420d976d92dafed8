# The ENF engine as a container: `enf serve` by default, any `enf` command
# otherwise (the batch Job runs `enf run --shard`). docs/deployment.md says
# how the image and the manifests in deploy/ fit together.
#
#   docker build -t enf:0.1.0 .
#   docker run --rm -p 8080:8080 -e ENF_SERVE_TOKEN=change-me enf:0.1.0
#
# Build stage: the project's own set-up (.ci/setup) builds the host and the
# agents and fetches the default model; nothing else is downloaded.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# ENF_FEATURES=cuda builds the CUDA host (on a CUDA devel base image).
ARG ENF_FEATURES=
RUN ENF_FEATURES="$ENF_FEATURES" .ci/setup \
    && mkdir -p /opt/enf \
    && cp -r graphs models examples/sample /opt/enf/ \
    && mkdir -p /opt/enf/plugins && cp -r plugins/dist /opt/enf/plugins/dist \
    && install -m 0755 target/release/enf /usr/local/bin/enf

# Run stage: the binary, the agents, the graphs, the default model and the
# bundled sample; no compiler, no Python.
FROM debian:bookworm-slim
# CA certificates for HTTPS model endpoints (the `openai` backend); curl for
# the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/enf /usr/local/bin/enf
COPY --from=build /opt/enf /opt/enf
RUN useradd --system --uid 10001 --home-dir /opt/enf enf \
    && mkdir -p /var/cache/enf && chown enf /var/cache/enf
USER 10001
WORKDIR /opt/enf
# Compiled plugins and sampled frames are cached here (mount a volume to keep them).
ENV ENF_CACHE_DIR=/var/cache/enf
EXPOSE 8080
# Liveness of `enf serve` on the default port (the probes need no token).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["enf"]
# Beyond loopback the server needs a token: ENF_SERVE_TOKEN (or --token).
CMD ["serve", "--graph", "graphs/enf.toml", "--listen", "0.0.0.0:8080"]
