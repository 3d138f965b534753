#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: AFL++ (Debian's afl++) driving cargo-afl builds of two
# targets, the audio path every upload takes (recognising the container, decoding it to 16 kHz samples) and the
# socket's message parsing (fuzz/src/bin/). Seeded with recordings made here and one message of each kind.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]    (default 600; both targets run at once, one core each)
# Installs what it needs (afl++, cargo-afl) the first time. Findings land in $FUZZ_DIR/<target>/default/crashes
# and hangs; the script fails when there are any. Each crash kept becomes a regression test of its target's
# code (see server/tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds=${1:-600}
fuzz_dir=${FUZZ_DIR:-$HOME/.cache/parlance/fuzz}

if ! command -v afl-fuzz >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends afl++ >/dev/null
fi
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install --locked cargo-afl
fi
# cargo-afl's runtime, built once per Rust toolchain.
config_log=$(mktemp)
cargo afl config --build >"$config_log" 2>&1 || grep -q "already built" "$config_log" || { cat "$config_log"; exit 1; }
rm -f "$config_log"

export CARGO_TARGET_DIR="$HOME/.cache/parlance/fuzz-target"
(cd fuzz && cargo afl build --release --locked)

seeds="$fuzz_dir/seeds"
mkdir -p "$seeds/audio" "$seeds/client_message"
if [ -z "$(ls -A "$seeds/audio")" ]; then
  work=$(mktemp -d)
  espeak-ng -w "$work/speech.wav" "Hi there"
  ffmpeg -loglevel error -y -i "$work/speech.wav" -t 0.4 -ar 16000 -ac 1 "$seeds/audio/speech.wav"
  for format in webm:libopus ogg:libopus mp3:libmp3lame flac:flac m4a:aac; do
    ffmpeg -loglevel error -y -i "$work/speech.wav" -t 0.4 -ar 16000 -ac 1 -c:a "${format#*:}" "$seeds/audio/speech.${format%%:*}" \
      || echo "fuzz: no ${format%%:*} seed (ffmpeg lacks ${format#*:})"
  done
  rm -rf "$work"
fi
printf '%s' '{"type":"start","encoding":"webm"}' >"$seeds/client_message/start.json"
printf '%s' '{"type":"start","session_id":"0f8fad5b-d9cb-469f-a165-70867728950e","encoding":"pcm16"}' >"$seeds/client_message/start-session.json"
printf '%s' '{"type":"end_turn"}' >"$seeds/client_message/end.json"
printf '%s' '{"type":"interrupt","played_through":3}' >"$seeds/client_message/interrupt.json"
printf '%s' '{"type":"text","text":"What time is it?","speak":false}' >"$seeds/client_message/text.json"
printf '%s' '{"type":"new_session"}' >"$seeds/client_message/new.json"

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
pids=()
for target in audio client_message; do
  mkdir -p "$fuzz_dir/$target"
  # -i -: resume from the last run's queue when there is one.
  input="$seeds/$target"
  [ -d "$fuzz_dir/$target/default/queue" ] && input=-
  cargo afl fuzz -V "$seconds" -t 5000 -i "$input" -o "$fuzz_dir/$target" "$CARGO_TARGET_DIR/release/$target" \
    >"$fuzz_dir/$target.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for target in audio client_message; do
  stats="$fuzz_dir/$target/default/fuzzer_stats"
  printf '%s: ' "$target"
  grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg) ' "$stats" | awk '{printf "%s=%s ", $1, $3}'
  echo
  found=$(find "$fuzz_dir/$target/default/crashes" "$fuzz_dir/$target/default/hangs" -type f ! -name README.txt | wc -l)
  [ "$found" -eq 0 ] || { echo "fuzz: $target found $found crashes or hangs"; status=1; }
done
exit $status
