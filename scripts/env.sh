# Shared environment for the project's scripts. Sourced, not run.
# One target directory outside the checkout: fresh clones (CI) reuse earlier build output, and the native
# and wasm builds share it instead of compiling the same crates twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlance/target}"
export PATH="$HOME/.cargo/bin:$PATH"
# Model files live outside the checkout too: a fresh clone finds them installed.
export PARLANCE_MODELS_DIR="${PARLANCE_MODELS_DIR:-$HOME/.cache/parlance/models}"
# Conversations and the knowledge base: data, not cache, so under ~/.local/share.
export PARLANCE_DATA_DIR="${PARLANCE_DATA_DIR:-$HOME/.local/share/parlance}"
