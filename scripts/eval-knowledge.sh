#!/usr/bin/env bash
# The knowledge evaluation in one command: makes the spoken questions (eval/knowledge/make-audio.sh), asks
# them through the socket and POST /api/voice on the installed models, and prints the report
# (eval/knowledge/check.py --report). Extra arguments go to the harness (server/benches/knowledge_eval.rs):
#   scripts/eval-knowledge.sh --typed                  # the questions as text: answers only, about 2 minutes
#   scripts/eval-knowledge.sh --paths streaming        # one path
#   PARLANCE_ANSWER_STYLE=generative scripts/eval-knowledge.sh
# Run it on a quiet machine: the timings mean nothing while something else uses the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

audio=${PARLANCE_EVAL_AUDIO:-/tmp/parlance-eval-audio}
if [[ " $* " != *" --typed "* ]]; then
  eval/knowledge/make-audio.sh "$audio"
fi
exec cargo bench --locked --workspace --bench knowledge_eval --profile dev -- --audio "$audio" "$@"
