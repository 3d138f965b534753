#!/usr/bin/env bash
# Runs every test Parlance has, after setting up whatever is missing. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/env.sh

printf '\n==> Formatting\n'
cargo fmt --all --check

printf '\n==> The web app builds, and no secret of the environment ends up in it\n'
# Built with a canary in every variable that holds a token or a key: a bundle that read one at build time
# (option_env!, a build script) would carry it to every browser that loads the app.
canary="parlance-canary-secret-$RANDOM$RANDOM"
secrets=(PARLANCE_TOKEN PARLANCE_OPENAI_API_KEY PARLANCE_STT_API_KEY PARLANCE_LLM_API_KEY PARLANCE_TTS_API_KEY PARLANCE_EMBEDDINGS_API_KEY OPENAI_API_KEY)
env "${secrets[@]/%/=$canary}" bash scripts/build-web.sh
if grep -rqF "$canary" frontend/dist; then
  echo "test: a secret from the build's environment is in the web app bundle (frontend/dist)" >&2
  exit 1
fi

printf '\n==> Build with lints (clippy compiles the workspace'"'"'s own crates; warnings are errors)\n'
# Set for every cargo command below, or `cargo test` would compile the workspace's crates again without it.
export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh"
cargo build --workspace --all-targets --locked

printf '\n==> Tests\n'
# The whole run's output is kept to check that no key the tests configure shows up in it.
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
# A test that hangs fails the run with its name (libtest names any test running over 60 s) instead of running
# into CI's own limit with nothing to show: the whole run takes minutes, so 30 leaves room for a slow machine.
status=0
timeout --kill-after=30s 30m cargo test --workspace --locked 2>&1 | tee "$test_log" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "test: the tests were stopped after 30 minutes; look above for a test 'running for over 60 seconds'" >&2
fi
[ "$status" -eq 0 ] || exit "$status"
# The fake provider's key (server/tests/it/support/fake_openai.rs) and the token of server_process.rs's log test.
for secret in sk-test-secret-key-0123456789 canary-token-5d1f0e9a7b3c2e8f; do
  if grep -qF "$secret" "$test_log"; then
    echo "test: the test run's output shows a configured secret ($secret is a test value; a real one would leak the same way)" >&2
    exit 1
  fi
done

printf '\n==> The web app in a real browser (headless Chromium; PARLANCE_E2E_BACKENDS=%s)\n' "${PARLANCE_E2E_BACKENDS:-local}"
# `cargo test` built the server binary the browser tests start; with local models they need the default set.
if [ "${PARLANCE_E2E_BACKENDS:-local}" = local ]; then
  "$CARGO_TARGET_DIR/debug/parlance" models
fi
# A browser test gets 10 minutes: a hung one fails with its name instead of holding the run.
node --test --test-concurrency=1 --test-timeout=600000 e2e/
