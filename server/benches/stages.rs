//! Speed of the embedded model stages, printed as figures (not a pass/fail test).
//!
//!     source scripts/env.sh && cargo bench -p parlance-server --bench stages --profile dev
//!     ... -- llm          only the sections whose name contains `llm` (embeddings, llm)
//!
//! Uses the models in PARLANCE_MODELS_DIR (`parlance models` installs them). Run it on a quiet machine:
//! two cores shared with a build give meaningless numbers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parlance_server::embeddings::{Embedder, LocalEmbeddings};
use parlance_server::models::{Installer, catalog};

fn main() {
    let models_dir = std::env::var_os("PARLANCE_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("models"));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // `cargo bench` passes `--bench`; a bare word picks sections by name.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wanted = |section: &str| filter.as_deref().is_none_or(|f| section.contains(f));
    if wanted("embeddings") {
        runtime.block_on(embeddings(&models_dir));
    }
    if wanted("llm") {
        runtime.block_on(llm::run(&models_dir));
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
                let mut stream = model.stream(ChatRequest { messages, tools: tools.clone() }).await.expect("request accepted");
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
    if !installer.is_installed(&catalog::MINILM_L6_V2) {
        eprintln!("embeddings: not installed in {}; run `parlance models`", models_dir.display());
        return;
    }
    let started = Instant::now();
    let embedder = LocalEmbeddings::load(&installer.model_dir(&catalog::MINILM_L6_V2)).expect("model loads");
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

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
