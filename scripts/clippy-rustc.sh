#!/usr/bin/env bash
# Clippy as the compiler of the workspace's own crates: scripts/test.sh sets RUSTC_WORKSPACE_WRAPPER to this,
# so the test build lints as it compiles. `cargo clippy` instead checks every dependency a second time in its
# own mode (and reruns their build scripts: llama.cpp's C++ again), which cost a cold CI run 10-19 minutes;
# cargo hands only the workspace's crates to this wrapper, so dependencies keep their ordinary artefacts.
# Cargo runs it as `clippy-rustc.sh /path/to/rustc ARGS...`, like clippy-driver itself.
exec clippy-driver "$@" -D warnings
