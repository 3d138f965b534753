# syntax=docker/dockerfile:1
# Parlance in one image: the server and the web app it serves.
#   docker build -t parlance .
#   docker run -p 8080:8080 -v parlance-data:/var/lib/parlance \
#     -e PARLANCE_OPENAI_BASE_URL=http://host.docker.internal:11434/v1 parlance

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libespeak-ng-dev libopus-dev \
 && rm -rf /var/lib/apt/lists/*
# Same tool versions as scripts/setup.sh; Trunk is told never to download its own.
RUN rustup target add wasm32-unknown-unknown \
 && cargo install trunk --version 0.21.14 --locked \
 && cargo install wasm-bindgen-cli --version 0.2.130
ENV TRUNK_OFFLINE=true
WORKDIR /src
COPY . .
RUN cargo fetch --locked \
 && trunk build --release \
 && cargo build --release --locked -p parlance-server --bin parlance

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 curl libespeak-ng1 libopus0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/parlance --create-home parlance
COPY --from=build /src/target/release/parlance /usr/local/bin/parlance
COPY --from=build /src/frontend/dist /usr/share/parlance/app
ENV PARLANCE_BIND=0.0.0.0:8080 \
    PARLANCE_FRONTEND_DIR=/usr/share/parlance/app \
    PARLANCE_LOG_FORMAT=json
# Conversations, knowledge and models live under the working directory: keep it on a volume.
WORKDIR /var/lib/parlance
VOLUME ["/var/lib/parlance"]
USER parlance
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health >/dev/null || exit 1
ENTRYPOINT ["parlance"]
