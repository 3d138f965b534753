#!/usr/bin/env python3
"""Consistency check of the knowledge evaluation set, and the reference scoring rules for its harness.

    python3 eval/knowledge/check.py                      # check questions.jsonl against notes/, exit 1 on a problem
    python3 eval/knowledge/check.py --score k05 "A full service is 95 euros."   # score one answer: hit, wrong, ...
    python3 eval/knowledge/check.py --report RESULTS.jsonl   # score a harness run (server/benches/knowledge_eval.rs)

The harness (Rust) must normalise and score exactly as `normalize`, `contains` and `score` do here; README.md
states the same rules in words.
"""

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions.jsonl"
NOTES = HERE / "notes"

KINDS = ("fact", "yes_no", "not_in_notes", "follow_up", "general")
VOICES = ("espeak", "flite")
ENCODINGS = (None, "webm", "mp4")
FIELDS = {"id", "kind", "question", "expect", "expect_not", "note", "previous", "answer", "evidence", "absent", "voice", "encode"}

# Single words that give a yes/no answer its polarity (after normalisation; the first one in the answer counts).
YES_WORDS = {"yes", "yeah", "yep", "sure", "certainly", "absolutely", "correct"}
NO_WORDS = {"no", "nope", "not", "don't", "doesn't", "isn't", "aren't", "can't", "cannot", "won't", "never"}

UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                    "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
DAYS = {d + "s": d for d in "monday tuesday wednesday thursday friday saturday sunday".split()}
# Words a recogniser writes either way, joined: "Wi-Fi" = "wifi", "e-bike" = "ebike".
JOINED = {("wi", "fi"): "wifi", ("e", "bike"): "ebike", ("e", "bikes"): "ebikes"}
TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}


def _numbers_to_digits(tokens):
    """Number words to digits: "forty five" -> "45", "one hundred and twenty" -> "120", "eight thirty" -> "8 30"."""
    out, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        if t not in UNITS and t not in TENS:
            out.append(t)
            i += 1
            continue
        value = UNITS.get(t, TENS.get(t))
        i += 1
        if t in TENS and i < len(tokens) and tokens[i] in UNITS and 0 < UNITS[tokens[i]] < 10:
            value += UNITS[tokens[i]]
            i += 1
        if value < 10 and i < len(tokens) and tokens[i] == "hundred":
            value *= 100
            i += 1
            j = i + 1 if i < len(tokens) and tokens[i] == "and" else i
            if j < len(tokens) and (tokens[j] in UNITS or tokens[j] in TENS):
                rest = UNITS.get(tokens[j], TENS.get(tokens[j]))
                j += 1
                if tokens[j - 1] in TENS and j < len(tokens) and tokens[j] in UNITS and 0 < UNITS[tokens[j]] < 10:
                    rest += UNITS[tokens[j]]
                    j += 1
                value += rest
                i = j
        out.append(str(value))
    return out



# British spellings and the American ones Whisper's English models write instead: the same word heard right.
AMERICAN = {
    "tyre": "tire", "tyres": "tires", "cheque": "check", "cheques": "checks", "neighbour": "neighbor",
    "neighbours": "neighbors", "colour": "color", "colours": "colors", "centre": "center", "metre": "meter",
    "metres": "meters", "litre": "liter", "litres": "liters", "favourite": "favorite", "labour": "labor",
    "programme": "program", "grey": "gray", "travelling": "traveling", "organise": "organize",
}

def normalize(text):
    """Tokens compared by every rule: lower case, punctuation and hyphens as spaces ("tune-up" = "tune up",
    "8:30" = "8 30"), "%" as "percent", digits split from letters ("6pm" = "6 pm", "a17" = "a 17"), a final "'s"
    dropped, "wi fi" and "e bike" joined, days in the plural as in the singular ("on Tuesdays" = "on tuesday"),
    British spellings as American ones ("tyre" = "tire": Whisper's English models write American, as Whisper's
    own English normaliser allows), number words as digits ("forty five" = "45"). The decimal point of "1.5" is
    kept."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("%", " percent ")
    text = re.sub(r"(?!(?<=\d)\.(?=\d))[^a-z0-9']", " ", text)
    text = re.sub(r"(?<=[0-9])(?=[a-z])|(?<=[a-z])(?=[0-9])", " ", text)
    tokens = []
    for token in text.split():
        token = token.strip("'")
        if token.endswith("'s"):
            token = token[:-2]
        if token:
            token = DAYS.get(token, token)
            tokens.append(AMERICAN.get(token, token))
    joined = []
    for token in tokens:
        if joined and (joined[-1], token) in JOINED:
            joined[-1] = JOINED[(joined[-1], token)]
        else:
            joined.append(token)
    return _numbers_to_digits(joined)


def contains(text, phrase):
    """Whether the normalised phrase occurs in the normalised text as consecutive whole tokens."""
    hay, needle = normalize(text), normalize(phrase)
    if not needle:
        return False
    return any(hay[i:i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))


def load_questions():
    rows = []
    for number, line in enumerate(QUESTIONS.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            rows.append((number, json.loads(line)))
    return rows


def decline_phrases(rows):
    """The phrases meaning "the notes don't say": the `expect` of the not_in_notes questions."""
    phrases = []
    for _, q in rows:
        if q["kind"] == "not_in_notes":
            phrases += [p for p in q["expect"] if p not in phrases]
    return phrases


def score(q, answer, declines):
    """One answer to question q: "hit", "wrong" (confidently wrong), "declined" (said the notes don't say) or
    "miss". For not_in_notes questions, "declined" is the right outcome and "hit" is never returned."""
    declined = any(contains(answer, p) for p in declines)
    wrong = any(contains(answer, p) for p in q.get("expect_not") or [])
    if q["kind"] == "not_in_notes":
        question_tokens = set(normalize(q["question"]))
        invented = [t for t in normalize(answer) if t[0].isdigit() and t not in question_tokens]
        if wrong or invented:
            return "wrong"
        return "declined" if declined else "miss"
    if declined:
        return "declined"
    if q["kind"] == "yes_no":
        polarity = next((("yes" if t in YES_WORDS else "no") for t in normalize(answer) if t in YES_WORDS | NO_WORDS), None)
        if wrong or (polarity is not None and polarity != q["answer"]):
            return "wrong"
        if polarity == q["answer"] or any(contains(answer, e) for e in q["expect"]):
            return "hit"
        return "miss"
    if wrong:
        return "wrong"
    return "hit" if any(contains(answer, e) for e in q["expect"]) else "miss"


def check():
    errors = []
    rows = load_questions()
    notes = {p.name: p.read_text(encoding="utf-8") for p in sorted(NOTES.glob("*.md"))}
    all_notes = "\n".join(notes.values()).lower()
    ids, referenced = {}, Counter()
    previous_row = None

    for name, text in notes.items():
        words = len(text.split())
        if not 60 <= words <= 200:
            errors.append(f"note {name}: {words} words, not 60-200")

    for number, q in rows:
        where = f"line {number} ({q.get('id', '?')})"
        unknown = set(q) - FIELDS
        if unknown:
            errors.append(f"{where}: unknown fields {sorted(unknown)}")
        for field in ("id", "kind", "question", "expect", "voice"):
            if field not in q:
                errors.append(f"{where}: missing `{field}`")
        if any(field not in q for field in ("id", "kind", "question", "expect", "voice")):
            continue
        if not re.fullmatch(r"k\d{2,}", q["id"]):
            errors.append(f"{where}: id is not like k01")
        if q["id"] in ids:
            errors.append(f"{where}: id also on line {ids[q['id']]}")
        ids[q["id"]] = number
        kind = q["kind"]
        if kind not in KINDS:
            errors.append(f"{where}: kind {kind!r}")
            continue
        if q["voice"] not in VOICES:
            errors.append(f"{where}: voice {q['voice']!r}")
        if q.get("encode") not in ENCODINGS:
            errors.append(f"{where}: encode {q.get('encode')!r}")
        if len(q["question"].split()) < 3:
            errors.append(f"{where}: fewer than 3 words, no middle to pause in")
        if any(c in q["question"] for c in "\t\n"):
            errors.append(f"{where}: tab or newline in the question")
        if not isinstance(q["expect"], list) or not q["expect"] or not all(isinstance(e, str) and normalize(e) for e in q["expect"]):
            errors.append(f"{where}: `expect` must be a non-empty list of strings with words in them")
            continue

        note = q.get("note")
        if kind in ("general", "not_in_notes"):
            if note is not None:
                errors.append(f"{where}: a {kind} question has note {note!r}; it must be null")
            text = None
        elif note is None:
            errors.append(f"{where}: a {kind} question needs `note`")
            text = None
        elif note not in notes:
            errors.append(f"{where}: note {note!r} does not exist in {os.path.relpath(NOTES)}")
            text = None
        else:
            text = notes[note]
            referenced[note] += 1

        if kind == "follow_up":
            prev = q.get("previous")
            if prev is None:
                errors.append(f"{where}: follow_up without `previous`")
            elif prev not in ids:
                errors.append(f"{where}: previous {prev!r} is not an earlier question")
            elif previous_row is None or previous_row.get("id") != prev:
                errors.append(f"{where}: previous {prev!r} is not the line just before it")
        elif "previous" in q:
            errors.append(f"{where}: `previous` on a {kind} question")

        if kind == "yes_no":
            answer = q.get("answer")
            if answer not in ("yes", "no"):
                errors.append(f"{where}: yes_no needs `answer` yes or no")
            elif normalize(q["expect"][0]) != [answer]:
                errors.append(f"{where}: the first `expect` of a yes_no question must be its answer {answer!r}")
            elif answer == "no" and "yes" not in (q.get("expect_not") or []):
                errors.append(f"{where}: a question answered no must list \"yes\" in expect_not")
            if not q.get("evidence"):
                errors.append(f"{where}: yes_no needs `evidence`, the note's words that give the answer")
        elif "answer" in q:
            errors.append(f"{where}: `answer` on a {kind} question")

        if text is not None:
            if q.get("evidence") and not contains(text, q["evidence"]):
                errors.append(f"{where}: evidence {q['evidence']!r} is not in {note}")
            content = [e for e in q["expect"] if not set(normalize(e)) <= YES_WORDS | NO_WORDS | {"do", "is", "does", "can"}]
            if kind in ("fact", "follow_up") and content != q["expect"]:
                errors.append(f"{where}: yes/no words in the expect of a {kind} question")
            first_missing = kind in ("fact", "follow_up") and not contains(text, q["expect"][0])
            if first_missing:
                errors.append(f"{where}: expect {q['expect'][0]!r} is not in {note}")
            note_tokens = set(normalize(text))
            for e in content[1:] if first_missing else content:
                missing = [t for t in normalize(e) if t not in note_tokens]
                if missing:
                    errors.append(f"{where}: expect {e!r}: {missing} not in {note}")
            for e in q.get("expect_not") or []:
                if kind in ("fact", "follow_up") and contains(text, e) and not contains(text, q["expect"][0]):
                    errors.append(f"{where}: expect_not {e!r} is in {note}")

        if kind == "not_in_notes":
            for word in q.get("absent") or []:
                if word.lower() in all_notes:
                    errors.append(f"{where}: absent word {word!r} appears in the notes: the notes may answer it now")
        elif "absent" in q:
            errors.append(f"{where}: `absent` on a {kind} question")
        previous_row = q

    # Every expect must score as a hit against a made-up answer built from it, and the decline phrases as declined.
    declines = decline_phrases(rows)
    for _, q in rows:
        if q.get("kind") in ("fact", "follow_up", "general") and q.get("expect"):
            for e in q["expect"]:
                if score(q, f"I think it is {e}.", declines) != "hit":
                    errors.append(f"{q['id']}: the answer \"I think it is {e}.\" does not score as a hit")
        if q.get("kind") == "not_in_notes" and score(q, "Sorry, I couldn't find that in your notes.", declines) != "declined":
            errors.append(f"{q['id']}: a plain decline does not score as declined")

    unreferenced = sorted(set(notes) - set(referenced))
    kinds = Counter(q.get("kind") for _, q in rows)
    answers = Counter(q.get("answer") for _, q in rows if q.get("kind") == "yes_no")
    print(f"notes: {len(notes)} in {os.path.relpath(NOTES)} "
          f"({min(len(t.split()) for t in notes.values())}-{max(len(t.split()) for t in notes.values())} words), "
          f"{len(referenced)} referenced by questions"
          + (f"; only distractors: {', '.join(unreferenced)}" if unreferenced else ""))
    print(f"questions: {len(rows)}: " + ", ".join(f"{k} {kinds[k]}" for k in KINDS)
          + f" (yes_no: {answers['yes']} yes, {answers['no']} no)")
    print("voices: " + ", ".join(f"{v} {n}" for v, n in sorted(Counter(q.get('voice') for _, q in rows).items()))
          + "; re-encoded: " + ", ".join(f"{e} {n}" for e, n in sorted(Counter(q.get('encode') for _, q in rows if q.get('encode')).items())))
    checked = sum(1 for _, q in rows if q.get("kind") in ("fact", "yes_no", "follow_up"))
    print(f"checked against their notes: {checked} fact, yes_no and follow_up questions; "
          f"{kinds['not_in_notes']} not_in_notes questions against all notes")
    for line in errors:
        print("ERROR: " + line)
    print("consistent" if not errors else f"{len(errors)} problem(s)")
    return 1 if errors else 0


def word_errors(reference, hypothesis):
    """Word-level edit distance between normalised texts, and the reference's length."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1], len(ref)


def percentile(values, p):
    """Nearest-rank percentile; None for no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, -(-len(values) * p // 100) - 1))]


def report(path):
    """The figures of a harness run: per path (typed, streaming, sequential), answers scored as `score` does,
    word error rate, retrieval, and time to first audio by kind of question."""
    rows = load_questions()
    questions = {q["id"]: q for _, q in rows}
    declines = decline_phrases(rows)
    titles = {}
    for note in NOTES.glob("*.md"):
        first = note.read_text(encoding="utf-8").splitlines()[0]
        titles[note.name] = first.lstrip("#").strip()
    results = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    fmt = lambda v: "-" if v is None else f"{v:.0f}"
    order = ["typed", "streaming", "sequential", "hands_free", "hands_free_paused", "barge_in"]
    for run in sorted({r["path"] for r in results}, key=order.index):
        done = [r for r in results if r["path"] == run]
        outcome = {r["id"]: score(questions[r["id"]], r["answer"], declines) for r in done}
        answerable = [r["id"] for r in done if questions[r["id"]]["kind"] in ("fact", "yes_no", "follow_up")]
        hits = [i for i in answerable if outcome[i] == "hit"]
        wrong = [i for i in outcome if outcome[i] == "wrong"]
        yes_no_wrong = [i for i in wrong if questions[i]["kind"] == "yes_no"]
        unanswerable = [r["id"] for r in done if questions[r["id"]]["kind"] == "not_in_notes"]
        declined = [i for i in unanswerable if outcome[i] == "declined"]
        general = [r["id"] for r in done if questions[r["id"]]["kind"] == "general"]
        general_hits = [i for i in general if outcome[i] == "hit"]
        with_note = [r for r in done if questions[r["id"]]["note"]]
        found = [r for r in with_note if titles.get(questions[r["id"]]["note"]) in r["sources"]]
        pct = lambda part, whole: 100.0 * len(part) / len(whole) if whole else 0.0
        print(f"{run}: {len(done)} questions")
        print(f"  expected fact          {len(hits)}/{len(answerable)} = {pct(hits, answerable):.0f}%   "
              f"misses: {' '.join(i for i in answerable if outcome[i] != 'hit') or '-'}")
        print(f"  confidently wrong      {len(wrong)} ({len(yes_no_wrong)} yes/no): {' '.join(wrong) or '-'}")
        print(f"  not in the notes       {len(declined)}/{len(unanswerable)} = {pct(declined, unanswerable):.0f}% declined")
        print(f"  general                {len(general_hits)}/{len(general)} right")
        print(f"  retrieval              {len(found)}/{len(with_note)} turns list the answering note among their sources")
        if run != "typed":
            groups = {"all": done}
            for voice in ("espeak", "flite"):
                groups[voice] = [r for r in done if questions[r["id"]]["voice"] == voice]
            for encode in ("webm", "mp4"):
                groups[encode] = [r for r in done if questions[r["id"]].get("encode") == encode]
            parts = []
            for name, group in groups.items():
                errors = [word_errors(questions[r["id"]]["question"], r["transcript"]) for r in group]
                total = sum(n for _, n in errors)
                if total:
                    parts.append(f"{name} {100.0 * sum(e for e, _ in errors) / total:.1f}%")
            print(f"  word error rate        {', '.join(parts)}")
        for kind, members in (("general", lambda q: q["kind"] == "general"), ("knowledge", lambda q: q["kind"] != "general")):
            group = [r for r in done if members(questions[r["id"]])]
            end_turn = [r["first_audio_ms"] for r in group]
            speech_end = [r.get("first_audio_from_speech_end_ms") for r in group]
            label = {"typed": "from the question", "streaming": "from end_turn", "sequential": "from the upload"}.get(
                run, "from the server's end of the turn")
            line = f"  first audio {kind:<10} p50 {fmt(percentile(end_turn, 50))} ms, p95 {fmt(percentile(end_turn, 95))} ms {label}"
            if run != "typed":
                line += f"; p50 {fmt(percentile(speech_end, 50))} ms, p95 {fmt(percentile(speech_end, 95))} ms from the end of speech"
            print(line + f" (n={len(group)})")
        ended = [r["turn_ended"] for r in done if r.get("turn_ended")]
        if ended:
            cut = [r["id"] for r in done if r.get("turn_ended") and r["turn_ended"]["cut_off"]]
            delays = [t["delay_ms"] for t in ended]
            print(f"  turn taking            cut off before the speech ended: {len(cut)}/{len(ended)} = {pct(cut, ended):.0f}% "
                  f"({' '.join(cut) or '-'}); end of turn p50 {fmt(percentile(delays, 50))} ms, "
                  f"p95 {fmt(percentile(delays, 95))} ms after the end of speech")
        over = [r["barge_in"] for r in done if r.get("barge_in")]
        if over:
            said = [b for b in over if b["acknowledgement_said"]]
            stopped = [b for b in said if b["stopped_by"] == "acknowledgement"]
            selfs = [b for b in over if b["stopped_by"] == "self"]
            cut_in = [b for b in over if b["interruption_said"]]
            heard = [b["interruption_ms"] for b in cut_in if b["stopped_by"] == "interruption"]
            print(f"  barge-in               self-interruptions {len(selfs)}/{len(over)} answers "
                  f"({sum(b['echoes_ignored'] for b in over)} stretches of echo ignored); "
                  f"acknowledgements that stopped the answer {len(stopped)}/{len(said)} = {pct(stopped, said):.0f}%; "
                  f"interruptions heard {len(heard)}/{len(cut_in)}, p50 {fmt(percentile(heard, 50))} ms, "
                  f"p95 {fmt(percentile(heard, 95))} ms from their start to `interrupted`")
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "--report":
        return report(argv[1])
    if len(argv) == 3 and argv[0] == "--score":
        rows = load_questions()
        q = next((q for _, q in rows if q["id"] == argv[1]), None)
        if q is None:
            print(f"no question {argv[1]!r}", file=sys.stderr)
            return 2
        print(score(q, argv[2], decline_phrases(rows)))
        return 0
    if argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
