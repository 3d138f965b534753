//! Speed of the embedded model stages, printed as figures (not a pass/fail test).
//!
//!     source scripts/env.sh && cargo bench --workspace --bench stages --profile dev
//!     ... -- stt            only the sections whose name contains one of the words after `--`
//!
//! With section names (`embeddings`, `knowledge`) only those run.
//! Uses the models in PARLANCE_MODELS_DIR (`parlance models` installs them). Run it on a quiet machine:
//! two cores shared with a build give meaningless numbers.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{ms, percentiles, tool};
use parlance_server::audio::AudioUpload;
use parlance_server::embeddings::{Embedder, LocalEmbeddings};
use parlance_server::models::{Installer, catalog};
use parlance_server::tts::{LocalTts, VoiceEngine};

fn main() {
    // SAFETY: first thing in main, no other thread yet (as the server does).
    unsafe { parlance_server::cpu::settle_thread_count() };
    let models_dir = std::env::var_os("PARLANCE_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("models"));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // `cargo bench` passes `--bench`; other words select sections by name.
    let filters: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let wanted = |section: &str| filters.is_empty() || filters.iter().any(|f| section.contains(f.as_str()));
    if wanted("embeddings") {
        runtime.block_on(embeddings(&models_dir));
    }
    if wanted("stt") {
        runtime.block_on(stt(&models_dir));
    }
    if wanted("tts") {
        runtime.block_on(tts(&models_dir));
    }
    if wanted("llm") {
        runtime.block_on(llm::run(&models_dir));
    }
    if wanted("knowledge") {
        runtime.block_on(knowledge::run(&models_dir));
    }
}

/// Real-time factor: seconds of audio per second of compute (higher is faster; > 1 keeps up with playback).
async fn tts(models_dir: &std::path::Path) {
    let installer = Installer::new(models_dir);
    if !installer.is_installed(&catalog::PIPER_JOE) || !installer.is_installed(&catalog::ONNX_RUNTIME) {
        eprintln!("tts: the Piper voice or ONNX Runtime is not installed in {}; run `parlance models`", models_dir.display());
        return;
    }
    let voice_dir = installer.model_dir(&catalog::PIPER_JOE);
    let library = parlance_server::onnx::library_in(models_dir);
    let started = Instant::now();
    let piper = LocalTts::load(&voice_dir, &library, VoiceEngine::Piper).expect("voice loads");
    assert_eq!(piper.engine(), VoiceEngine::Piper, "Piper fell back to espeak-ng: see the log");
    println!("tts         load (piper)         {:>8.1} ms", ms(started.elapsed()));
    let espeak = LocalTts::load(&voice_dir, &library, VoiceEngine::Espeak).expect("espeak-ng starts");

    let short = "Hello, how can I help?";
    let long = "Parlance keeps your conversations on this machine, answers with a small local model, and reads the \
                answer aloud with a voice that runs inside the server, so nothing you say ever leaves the room.";
    piper.synthesize_sentence(short).await.expect("warm-up");
    for (engine, tts) in [("piper", &piper), ("espeak", &espeak)] {
        for (name, sentence) in [("short", short), ("long", long)] {
            let mut audio_secs = 0.0;
            let mut compute = Duration::ZERO;
            let runs = 5;
            for _ in 0..runs {
                let started = Instant::now();
                let pcm = tts.synthesize_sentence(sentence).await.expect("speaks");
                compute += started.elapsed();
                audio_secs += pcm.duration_secs();
            }
            println!(
                "tts         {engine:<6} {name:<5} {:>3} chars  {:>5.2} s audio in {:>7.1} ms   real-time factor {:>5.1}x  (n={runs})",
                sentence.chars().count(),
                audio_secs / f64::from(runs),
                ms(compute) / f64::from(runs),
                audio_secs / compute.as_secs_f64()
            );
        }
    }
}

mod llm {
    //! Qwen2.5-Coder-0.5B through llama.cpp, as the agent calls it: system prompt, tool descriptions, a question.
    //! A cold call reads the whole prompt; a second call with the same system prompt and tools reuses their KV
    //! cache and reads only the new question.

    use std::path::Path;
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use parlance_server::agent::SYSTEM_PROMPT;
    use parlance_server::agent::tools::{CurrentTime, ToolRegistry};
    use parlance_server::llm::local::Report;
    use parlance_server::llm::{ChatMessage, ChatModel, ChatRequest, LocalChat, LocalChatOptions};
    use parlance_server::models::{Installer, catalog};

    const RUNS: usize = 3;

    pub async fn run(models_dir: &Path) {
        let installer = Installer::new(models_dir);
        if !installer.is_installed(&catalog::QWEN_CODER_0_5B) {
            eprintln!("llm: not installed in {}; run `parlance models`", models_dir.display());
            return;
        }
        let file = installer.model_dir(&catalog::QWEN_CODER_0_5B).join("model.gguf");
        // PARLANCE_LLM_THREADS as the server reads it: 0 or unset means one thread per core.
        let threads = std::env::var("PARLANCE_LLM_THREADS").ok().and_then(|t| t.parse().ok()).filter(|&t: &usize| t > 0);
        let defaults = LocalChatOptions::default();
        let options = LocalChatOptions { threads: threads.unwrap_or(defaults.threads), ..defaults };
        let started = Instant::now();
        let model = LocalChat::load(&file, options).expect("model loads");
        println!("llm         load                 {:>8.1} ms   ({} threads)", super::ms(started.elapsed()), options.threads);

        let tools = ToolRegistry::new().with(CurrentTime).specs();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            // A different first line each run: nothing of the previous run's cache applies.
            let system = format!("Session {run}. {SYSTEM_PROMPT}");
            for (question, reports) in [("Hi! How are you today?", &mut cold), ("Tell me something nice about autumn.", &mut warm)] {
                let messages = vec![ChatMessage::System(system.clone()), ChatMessage::User(question.to_owned())];
                let mut stream =
                    model.stream(ChatRequest { messages, tools: tools.clone(), default_call: None }).await.expect("request accepted");
                while let Some(event) = stream.next().await {
                    event.expect("generation succeeds");
                }
                reports.push(*model.reports().last().expect("a report"));
            }
        }
        print("cold prompt", &cold);
        print("cached system prompt", &warm);
    }

    fn print(label: &str, reports: &[Report]) {
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let per_second = |tokens: usize, time: Duration| tokens as f64 / time.as_secs_f64().max(1e-9);
        let read = median(reports.iter().map(|r| (r.prompt_tokens - r.reused_tokens) as f64).collect());
        let reused = median(reports.iter().map(|r| r.reused_tokens as f64).collect());
        let prefill_ms = median(reports.iter().map(|r| super::ms(r.prefill)).collect());
        let prefill_rate = median(reports.iter().map(|r| per_second(r.prompt_tokens - r.reused_tokens, r.prefill)).collect());
        let generation_rate = median(reports.iter().map(|r| per_second(r.generated_tokens, r.generation)).collect());
        println!(
            "llm         {label:<21} prefill {prefill_ms:>7.1} ms for {read:.0} tokens ({reused:.0} cached), {prefill_rate:>6.1} tokens/s; \
             generation {generation_rate:>5.1} tokens/s   (median of {RUNS})"
        );
    }
}

async fn embeddings(models_dir: &std::path::Path) {
    let installer = Installer::new(models_dir);
    if !installer.is_installed(&catalog::MINILM_L6_V2) || !installer.is_installed(&catalog::ONNX_RUNTIME) {
        eprintln!("embeddings: not installed in {}; run `parlance models`", models_dir.display());
        return;
    }
    let started = Instant::now();
    let embedder = LocalEmbeddings::load(&installer.model_dir(&catalog::MINILM_L6_V2), &parlance_server::onnx::library_in(models_dir))
        .expect("model loads");
    println!("embeddings  load                 {:>8.1} ms", ms(started.elapsed()));

    let sentence = "How do I add my own notes to the assistant's knowledge?".to_owned();
    embedder.embed(std::slice::from_ref(&sentence)).await.expect("warm-up");
    let mut single = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        embedder.embed(std::slice::from_ref(&sentence)).await.expect("embeds");
        single.push(started.elapsed());
    }
    let (p50, p95) = percentiles(&mut single);
    println!("embeddings  one sentence         p50 {:>6.1} ms   p95 {:>6.1} ms   (n=30)", ms(p50), ms(p95));

    // Note-sized texts of varied length, as ingestion sees them.
    let notes: Vec<String> = (0..256)
        .map(|i| {
            format!(
                "Note {i}: {}",
                "Parlance keeps conversations and knowledge on this machine; nothing is sent elsewhere. ".repeat(1 + i % 4)
            )
        })
        .collect();
    let started = Instant::now();
    let vectors = embedder.embed(&notes).await.expect("embeds");
    let elapsed = started.elapsed();
    assert_eq!(vectors.len(), notes.len());
    println!(
        "embeddings  batch of {}          {:>8.1} texts/s ({:.2} s)",
        notes.len(),
        notes.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

/// Knowledge base on LanceDB with real embeddings: ingestion rate, then search latency over 10,000 notes.
mod knowledge {
    use parlance_server::access::Caller;
    use std::sync::Arc;
    use std::time::Instant;

    use parlance_server::embeddings::{Embedder, LocalEmbeddings};
    use parlance_server::knowledge::{AddTimings, KnowledgeBase, SearchMode};
    use parlance_server::models::{Installer, catalog};
    use parlance_server::store::Database;
    use parlance_shared::NewNote;

    use super::{ms, percentiles};

    const NOTES: usize = 10_000;
    const BATCH: usize = 250;

    const TOPICS: [&str; 20] = [
        "the garden",
        "the boiler",
        "my bike",
        "the car",
        "the printer",
        "the router",
        "the dentist",
        "the school run",
        "the tax return",
        "the insurance",
        "the holiday",
        "the kitchen tap",
        "the heating",
        "the laptop",
        "the phone plan",
        "the gym",
        "the library books",
        "the recycling",
        "the passport",
        "the smoke alarm",
    ];
    const FACTS: [&str; 12] = [
        "needs checking every spring before the weather turns",
        "was serviced by a technician who left a card on the shelf",
        "has a warranty that ends in March and the receipt is in the blue folder",
        "is booked for Tuesday morning at nine, reschedule by phone",
        "uses the spare key hidden under the third flower pot",
        "costs about forty euros a month and renews automatically",
        "must be reset by holding the small button for ten seconds",
        "is handled by the neighbour while we are away",
        "had a fault last winter that the manual calls error E4",
        "gets cleaned with the soft brush, never with water",
        "is documented in the folder on the second shelf of the study",
        "should be replaced after about five years of use",
    ];

    /// Distinct note-sized texts (one to four sentences), like a household's notes.
    fn note(i: usize) -> NewNote {
        let topic = TOPICS[i % TOPICS.len()];
        let sentences: Vec<String> =
            (0..1 + i % 4).map(|s| format!("Note {i}: {topic} {}.", FACTS[(i / TOPICS.len() + s * 5) % FACTS.len()])).collect();
        NewNote { title: format!("About {topic} ({i})"), text: sentences.join(" "), source: Some("bench".into()) }
    }

    pub async fn run(models_dir: &std::path::Path) {
        let installer = Installer::new(models_dir);
        if !installer.is_installed(&catalog::MINILM_L6_V2) || !installer.is_installed(&catalog::ONNX_RUNTIME) {
            eprintln!("knowledge: embeddings not installed in {}; run `parlance models`", models_dir.display());
            return;
        }
        let library = parlance_server::onnx::library_in(models_dir);
        let embedder: Arc<dyn Embedder> =
            Arc::new(LocalEmbeddings::load(&installer.model_dir(&catalog::MINILM_L6_V2), &library).expect("model loads"));
        // PARLANCE_BENCH_DATA_DIR keeps the database between runs: a second run finds the notes stored and
        // measures only the searches (ingesting 10,000 notes takes minutes).
        let temporary = tempfile::tempdir().expect("temporary directory");
        let dir = std::env::var_os("PARLANCE_BENCH_DATA_DIR").map_or_else(|| temporary.path().to_owned(), std::path::PathBuf::from);
        let knowledge = KnowledgeBase::new(Arc::new(Database::new(&dir)), Some(Arc::clone(&embedder)));
        let opening = Instant::now();
        knowledge.open().await.expect("database opens");
        println!("knowledge   database open        {:>8.1} ms", ms(opening.elapsed()));
        if knowledge.count().await.expect("counted") == NOTES {
            println!("knowledge   {NOTES} notes already stored in {}: ingestion skipped", dir.display());
        } else {
            ingest(&knowledge).await;
        }
        let started = Instant::now();
        knowledge.optimize().await.expect("indices updated");
        println!("knowledge   optimize (indices)   {:>8.1} ms", ms(started.elapsed()));
        search(&knowledge, embedder.as_ref()).await;
    }

    async fn ingest(knowledge: &KnowledgeBase) {
        let words: usize = (0..NOTES).map(|i| note(i).text.split_whitespace().count()).sum();
        println!("knowledge   notes: {NOTES}, {:.0} words each on average (one to four sentences)", words as f64 / NOTES as f64);
        let started = Instant::now();
        let mut split = AddTimings::default();
        for first in (0..NOTES).step_by(BATCH) {
            let notes = (first..(first + BATCH).min(NOTES)).map(note).collect();
            let (_, timings) = knowledge.add_timed(notes).await.expect("notes stored");
            split.check += timings.check;
            split.embed += timings.embed;
            split.write += timings.write;
            split.index += timings.index;
            if first == 0 || (first + BATCH).is_multiple_of(2000) {
                let done = first + BATCH;
                println!("knowledge   ingested {done:>6}      {:>8.1} notes/s so far", done as f64 / started.elapsed().as_secs_f64());
            }
        }
        let ingest = started.elapsed();
        println!(
            "knowledge   ingestion {NOTES} notes   {:>8.1} notes/s ({:.1} s, embeddings included, batches of {BATCH})",
            NOTES as f64 / ingest.as_secs_f64(),
            ingest.as_secs_f64()
        );
        let share = |part: std::time::Duration| 100.0 * part.as_secs_f64() / ingest.as_secs_f64();
        println!(
            "knowledge   ingestion split      embedding {:.1} s ({:.0}%), duplicate check {:.1} s ({:.0}%), writes {:.1} s ({:.0}%), \
             full-text index and merging files {:.1} s ({:.0}%)",
            split.embed.as_secs_f64(),
            share(split.embed),
            split.check.as_secs_f64(),
            share(split.check),
            split.write.as_secs_f64(),
            share(split.write),
            split.index.as_secs_f64(),
            share(split.index),
        );
        let started = Instant::now();
        knowledge.optimize().await.expect("index updated");
        println!("knowledge   index update         {:>8.1} ms", ms(started.elapsed()));
        assert_eq!(knowledge.count().await.expect("counted"), NOTES);
    }

    async fn search(knowledge: &KnowledgeBase, embedder: &dyn Embedder) {
        // Enough searches that the median moves by less than a millisecond between runs (60 did not).
        const SEARCHES: usize = 300;
        let questions = [
            "when is the dentist appointment",
            "where is the spare key",
            "what does error E4 mean",
            "how do I reset the router",
            "who looks after things while we travel",
            "when does the warranty end",
        ];
        // The query's embedding is part of every hybrid and vector search: shown on its own to separate the two.
        let mut embedding = Vec::new();
        for round in 0..30 {
            let started = Instant::now();
            embedder.embed(&[questions[round % questions.len()].to_owned()]).await.expect("embeds");
            embedding.push(started.elapsed());
        }
        let (p50, p95) = percentiles(&mut embedding);
        println!("knowledge   query embedding only      p50 {:>6.1} ms   p95 {:>6.1} ms   (n=30)", ms(p50), ms(p95));
        // How much of the exact nearest neighbours the index finds, at the depth fusion reads from it.
        let mut recall = 0.0;
        for question in questions {
            recall += knowledge.vector_recall(question, 20).await.expect("recall").expect("embeddings are set up");
        }
        println!(
            "knowledge   vector index recall@20 against an exact search: {:.2} (mean of {})",
            recall / questions.len() as f32,
            questions.len()
        );
        for (label, mode) in [("hybrid", SearchMode::Hybrid), ("vector", SearchMode::VectorOnly), ("full-text", SearchMode::FullTextOnly)] {
            knowledge.search(&Caller::Anyone, questions[0], 5, mode).await.expect("warm-up");
            let mut samples = Vec::new();
            let mut parts: [Vec<std::time::Duration>; 6] = Default::default();
            for round in 0..SEARCHES {
                let started = Instant::now();
                let (hits, timings) =
                    knowledge.search_timed(&Caller::Anyone, questions[round % questions.len()], 5, mode).await.expect("search");
                samples.push(started.elapsed());
                let measured = timings.open + timings.embed + timings.vector.max(timings.text) + timings.read;
                let rest = timings.total.saturating_sub(measured);
                for (part, value) in parts.iter_mut().zip([timings.open, timings.embed, timings.vector, timings.text, timings.read, rest]) {
                    part.push(value);
                }
                // Full text alone finds nothing for a question made only of common words; the others always answer.
                assert!(mode == SearchMode::FullTextOnly || !hits.is_empty());
            }
            let (p50, p95) = percentiles(&mut samples);
            let embeds = if mode == SearchMode::FullTextOnly { "no embedding" } else { "query embedding included" };
            println!(
                "knowledge   search {label:<9} 10k  p50 {:>6.1} ms   p95 {:>6.1} ms   (n={SEARCHES}, k=5, {embeds})",
                ms(p50),
                ms(p95)
            );
            let [open, embed, vector, text, read, rest] = parts.map(|mut part| ms(percentiles(&mut part).0));
            println!(
                "knowledge     split (p50 each)   snapshot {open:>4.2} ms, embedding {embed:>4.1} ms, vector search {vector:>4.1} ms, \
                 full text {text:>4.1} ms (side by side), fusion and reading the hits {read:>4.2} ms, rest {rest:>4.2} ms"
            );
        }
    }
}

/// Whisper tiny.en real-time factor (processing time / audio duration; below 1 is faster than real time) on
/// spoken clips of exactly 3 s and 10 s, sent as WebM/Opus like a browser recording: decoding included.
async fn stt(models_dir: &std::path::Path) {
    use parlance_server::stt::{LocalStt, SpeechToText};

    let installer = Installer::new(models_dir);
    if !installer.is_installed(&catalog::WHISPER_TINY_EN) {
        eprintln!("stt: not installed in {}; run `parlance models`", models_dir.display());
        return;
    }
    let started = Instant::now();
    let greedy = LocalStt::load(&installer.model_dir(&catalog::WHISPER_TINY_EN)).expect("model loads").with_beam_size(1);
    println!("stt         load                 {:>8.1} ms", ms(started.elapsed()));
    let beam = LocalStt::load(&installer.model_dir(&catalog::WHISPER_TINY_EN)).expect("model loads").with_beam_size(5);

    let dir = tempfile::tempdir().expect("temp dir");
    let clips = [
        (3, "Remind me to call my sister at noon."),
        (
            10,
            "Parlance keeps your notes on this machine. Ask it what you wrote last week about the garden, and it will read \
             the answer back to you in a few seconds. Nothing leaves the house.",
        ),
    ];
    for (seconds, text) in clips {
        let wav = dir.path().join(format!("{seconds}s.wav"));
        let exact = dir.path().join(format!("{seconds}s-exact.wav"));
        let webm = dir.path().join(format!("{seconds}s.webm"));
        let wav_arg = wav.to_str().expect("utf-8 path");
        let exact_arg = exact.to_str().expect("utf-8 path");
        tool("espeak-ng", &["-w", wav_arg, text]);
        tool("sox", &["-V1", wav_arg, exact_arg, "pad", "0", "10", "trim", "0", &seconds.to_string()]);
        tool("ffmpeg", &["-nostdin", "-loglevel", "error", "-y", "-i", exact_arg, "-c:a", "libopus", webm.to_str().expect("utf-8 path")]);
        let upload = AudioUpload::from_bytes(std::fs::read(&webm).expect("clip").into()).expect("webm");

        // The beam only searches transcripts greedy decoding doubts: a clear clip costs the same either way.
        for (decoding, stt) in [("greedy", &greedy), ("beam if doubtful", &beam)] {
            let transcript = stt.transcribe(&upload).await.expect("transcribes"); // warm-up
            let mut runs = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                stt.transcribe(&upload).await.expect("transcribes");
                runs.push(started.elapsed());
            }
            let (p50, _) = percentiles(&mut runs);
            println!(
                "stt         {seconds:>2} s clip (webm/opus), {decoding:16}  RTF {:.3}   p50 {:>7.1} ms  (n=5)  {transcript:?}",
                p50.as_secs_f64() / f64::from(seconds),
                ms(p50)
            );
        }
    }
}
