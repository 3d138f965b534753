#!/usr/bin/env bash
# Speaks every question of eval/knowledge/questions.jsonl as a microphone would hear it.
#
#   eval/knowledge/make-audio.sh [--force] [OUT_DIR]      # OUT_DIR defaults to /tmp/parlance-eval-audio
#
# For each question `<id>` (voice espeak-ng or flite, as its `voice` field says):
#   <id>.wav          16 kHz mono 16-bit PCM: 300 ms of silence, the question, 700 ms of silence
#   <id>-paused.wav   the same with the text split at a word boundary near its middle, spoken as two utterances
#                     joined by 500 ms of silence (turn-taking evaluation, issue 17)
#   <id>.webm         Opus in WebM, as Chrome and Firefox record (only when `encode` is "webm")
#   <id>.m4a          AAC in MP4, as Safari records (only when `encode` is "mp4")
# and manifest.jsonl, one line per question, saying where the speech starts and ends in each file.
#
# The synthesised speech is trimmed of the voice's own leading and trailing silence (below -50 dBFS) and
# peak-normalised to -6 dBFS, so the silences above are exact. Files are skipped when they exist and were made
# from the same text, voice and encoding (meta/<id>.stamp); --force makes everything again.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
out=
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "make-audio.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
        *) [[ -z $out ]] || { echo "make-audio.sh: one output directory only" >&2; exit 2; }; out=$arg ;;
    esac
done
out=${out:-/tmp/parlance-eval-audio}

for tool in python3 espeak-ng flite sox ffmpeg; do
    command -v "$tool" >/dev/null || { echo "make-audio.sh: $tool is missing (apt-get install espeak-ng flite sox ffmpeg)" >&2; exit 1; }
done
renice -n 10 $$ >/dev/null 2>&1 || true # builds share these cores

readonly LEAD=0.3 TAIL=0.7 PAUSE=0.5 SPEECH_RATE=150 PEAK_DB=-6 TRIM_DB=-50d
readonly STAMP_VERSION=2 # bump when the way files are made changes, so old ones are remade

mkdir -p "$out/meta"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One line per question, fields separated by the unit separator 0x1f (not a tab: bash's read would merge empty
# fields between tabs): id, voice, encode, text, first half, second half (split at the word boundary closest to
# the middle of the text).
python3 - "$here/questions.jsonl" >"$work/questions.txt" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    q = json.loads(line)
    text = " ".join(q["question"].split())
    words = text.split(" ")
    if len(words) < 2 or "\x1f" in text:
        sys.exit(f"{q['id']}: a question needs two words or more: {text!r}")
    cut = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(text) / 2))
    print("\x1f".join([q["id"], q["voice"], q.get("encode") or "", text, " ".join(words[:cut]), " ".join(words[cut:])]))
PY

# speak VOICE TEXT OUT: the text spoken, trimmed of silence, 16 kHz mono 16-bit, peak at PEAK_DB.
speak() {
    local voice=$1 text=$2 dest=$3 raw="$work/raw.wav"
    case $voice in
        espeak) espeak-ng -s "$SPEECH_RATE" -w "$raw" -- "$text" ;;
        flite) flite -voice slt -t "$text" -o "$raw" ;;
        *) echo "make-audio.sh: unknown voice $voice" >&2; return 1 ;;
    esac
    sox -V1 -D "$raw" -r 16000 -c 1 -b 16 -e signed-integer "$dest" \
        silence 1 0.01 "$TRIM_DB" reverse silence 1 0.01 "$TRIM_DB" reverse norm "$PEAK_DB"
}

samples() { soxi -s "$1"; }

made=0 skipped=0
while IFS=$'\x1f' read -r id voice encode text first second; do
    stamp="v$STAMP_VERSION|$voice|$encode|$text"
    wav="$out/$id.wav" paused="$out/$id-paused.wav" encoded=
    case $encode in
        webm) encoded="$out/$id.webm" ;;
        mp4) encoded="$out/$id.m4a" ;;
    esac
    if ((!force)) && [[ -f $wav && -f $paused && ( -z $encoded || -f $encoded ) && -f $out/meta/$id.stamp ]] &&
        [[ $(head -n 1 "$out/meta/$id.stamp") == "$stamp" ]]; then
        skipped=$((skipped + 1))
        continue
    fi

    speak "$voice" "$text" "$work/whole.wav"
    sox -V1 -D "$work/whole.wav" "$work/out.wav" pad "$LEAD" "$TAIL"
    mv "$work/out.wav" "$wav"

    speak "$voice" "$first" "$work/first.wav"
    speak "$voice" "$second" "$work/second.wav"
    sox -V1 -D "$work/first.wav" "$work/first-pause.wav" pad 0 "$PAUSE"
    sox -V1 -D "$work/first-pause.wav" "$work/second.wav" "$work/joined.wav"
    sox -V1 -D "$work/joined.wav" "$work/out.wav" pad "$LEAD" "$TAIL"
    mv "$work/out.wav" "$paused"

    # 48 kHz mono as browsers record; bitexact so that the same input gives the same file.
    ffmpeg_args=(-nostdin -y -loglevel error -i "$wav" -ac 1 -ar 48000 -map_metadata -1 -fflags +bitexact -flags:a +bitexact)
    case $encode in
        webm) ffmpeg "${ffmpeg_args[@]}" -c:a libopus -b:a 32k "$work/out.webm" && mv "$work/out.webm" "$encoded" ;;
        mp4) ffmpeg "${ffmpeg_args[@]}" -c:a aac -b:a 64k "$work/out.m4a" && mv "$work/out.m4a" "$encoded" ;;
    esac

    # The stamp's second line: samples (16 kHz) of the whole question, and of the paused one's two halves.
    printf '%s\n%s %s %s\n' "$stamp" "$(samples "$work/whole.wav")" "$(samples "$work/first.wav")" "$(samples "$work/second.wav")" \
        >"$out/meta/$id.stamp"
    made=$((made + 1))
done <"$work/questions.txt"

# The manifest and the one-line summary.
python3 - "$here/questions.jsonl" "$out" "$made" "$skipped" "$LEAD" "$TAIL" "$PAUSE" <<'PY'
import json, sys, wave
from collections import Counter
from pathlib import Path
questions, out, made, skipped = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lead, tail, pause = (round(float(x) * 1000) for x in sys.argv[5:8])
ms = lambda samples: round(samples / 16)
rows, kinds, files, speech, total, paused_speech = [], Counter(), 0, 0, 0, 0
for line in open(questions, encoding="utf-8"):
    if not line.strip():
        continue
    q = json.loads(line)
    whole, first, second = (int(x) for x in (out / "meta" / f"{q['id']}.stamp").read_text().splitlines()[1].split())
    wav, paused = out / f"{q['id']}.wav", out / f"{q['id']}-paused.wav"
    with wave.open(str(wav)) as w, wave.open(str(paused)) as p:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), wav
        wav_ms, paused_ms = ms(w.getnframes()), ms(p.getnframes())
    encoded = {"webm": f"{q['id']}.webm", "mp4": f"{q['id']}.m4a"}.get(q.get("encode"))
    row = {
        "id": q["id"], "kind": q["kind"], "voice": q["voice"], "encode": q.get("encode"),
        "wav": wav.name, "encoded": encoded, "duration_ms": wav_ms,
        "speech_start_ms": lead, "speech_end_ms": lead + ms(whole),
        "paused_wav": paused.name, "paused_duration_ms": paused_ms,
        "paused_pause_ms": [lead + ms(first), lead + ms(first) + pause], "paused_speech_end_ms": lead + ms(first) + pause + ms(second),
    }
    assert row["speech_end_ms"] + tail - 1 <= wav_ms <= row["speech_end_ms"] + tail + 1, row
    # A voice speaks a word in 200-600 ms; outside that the text given to it or the trimming went wrong.
    words = len(q["question"].split())
    for name, speech_ms in (("", ms(whole)), ("-paused", ms(first) + ms(second))):
        if not 200 * words <= speech_ms <= 600 * words:
            sys.exit(f"{q['id']}{name}: {speech_ms} ms of speech for {words} words; remake it with --force")
    rows.append(row)
    kinds[q["kind"]] += 1
    files += 2 + (encoded is not None)
    speech += ms(whole)
    total += wav_ms
    paused_speech += ms(first) + ms(second)
with open(out / "manifest.jsonl", "w") as f:
    for row in rows:
        f.write(json.dumps(row) + "\n")
enc = Counter(r["encode"] for r in rows if r["encode"])
longest = max(rows, key=lambda r: r["speech_end_ms"] - r["speech_start_ms"])
print(f"{len(rows)} questions ({', '.join(f'{k} {n}' for k, n in kinds.items())}): {made} made, {skipped} already there; "
      f"{files} files in {out} ({len(rows)} wav, {len(rows)} paused, {enc['webm']} webm, {enc['mp4']} mp4); "
      f"speech {speech / 1000:.1f} s (mean {speech / len(rows) / 1000:.2f} s, longest {(longest['speech_end_ms'] - longest['speech_start_ms']) / 1000:.2f} s), "
      f"with silences {total / 1000:.1f} s; paused variants' speech {paused_speech / 1000:.1f} s")
PY
