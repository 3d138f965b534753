#!/usr/bin/env bash
# Sets up whatever is missing, builds the web app and the server, and starts Parlance.
# Arguments go to the server, e.g. `scripts/run.sh --bind 0.0.0.0:8080`; see `scripts/run.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/env.sh

printf '\n==> Building the web app\n'
bash scripts/build-web.sh

printf '\n==> Building the server\n'
# The dev profile with optimised compute crates (see Cargo.toml), and the whole workspace: `cargo test
# --workspace` unifies features over the same crates, so running after testing (or the reverse) compiles
# nothing twice. (Only `-p parlance-server` here would leave out the web app's crates' features, e.g. serde's
# `rc`, and the tests would then rebuild serde and everything above it.)
cargo build --locked --workspace
parlance="$CARGO_TARGET_DIR/debug/parlance"

printf '\n==> Local models (in %s)\n' "$PARLANCE_MODELS_DIR"
"$parlance" models

printf '\n==> Starting Parlance\n'
exec "$parlance" "$@"
