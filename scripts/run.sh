#!/usr/bin/env bash
# Sets up whatever is missing, builds the web app and the server, and starts Parlance.
# Arguments go to the server, e.g. `scripts/run.sh --bind 0.0.0.0:8080`; see `scripts/run.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/env.sh

printf '\n==> Building the web app\n'
cargo fetch --locked
trunk build --release

printf '\n==> Building and starting the server\n'
# The dev profile with optimised compute crates (see Cargo.toml): the tests build the same artefacts,
# so running after testing (or the reverse) compiles nothing twice.
exec cargo run --locked -p parlance-server --bin parlance -- "$@"
