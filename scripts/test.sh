#!/usr/bin/env bash
# Runs every test Parlance has, after setting up whatever is missing. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/env.sh

printf '\n==> Formatting\n'
cargo fmt --all --check

printf '\n==> The web app builds\n'
bash scripts/build-web.sh

printf '\n==> Build with lints (clippy compiles the workspace'"'"'s own crates; warnings are errors)\n'
# Set for every cargo command below, or `cargo test` would compile the workspace's crates again without it.
export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh"
cargo build --workspace --all-targets --locked

printf '\n==> Tests\n'
cargo test --workspace --locked

printf '\n==> The web app in a real browser (headless Chromium; PARLANCE_E2E_BACKENDS=%s)\n' "${PARLANCE_E2E_BACKENDS:-local}"
# `cargo test` built the server binary the browser tests start; with local models they need the default set.
if [ "${PARLANCE_E2E_BACKENDS:-local}" = local ]; then
  "$CARGO_TARGET_DIR/debug/parlance" models
fi
node --test --test-concurrency=1 e2e/
