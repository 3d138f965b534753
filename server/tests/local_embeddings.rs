//! all-MiniLM-L6-v2 running in-process on the real weights (installed by the real installer if missing).

mod support;

use axum::http::StatusCode;
use parlance_server::embeddings::{Embedder, LocalEmbeddings};
use parlance_server::models::catalog::MINILM_L6_V2;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn embedder() -> LocalEmbeddings {
    LocalEmbeddings::load(&support::installed_model(&MINILM_L6_V2)).expect("the model loads")
}

#[tokio::test]
async fn a_paraphrase_is_closer_than_an_unrelated_sentence() {
    let embedder = embedder();
    let texts: Vec<String> = [
        "How does this app handle security?",
        "Privacy note: your recordings never leave the machine, and API keys stay on the server.",
        "Whisk two eggs with the flour, then bake the cake for forty minutes.",
        "Which browsers can I use to talk to the assistant?",
        "Parlance works in Chrome, Firefox and Safari, on desktop and on phones.",
    ]
    .map(String::from)
    .to_vec();
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 5);
    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "vectors are L2-normalised: {norm}");
    }
    let security_privacy = cosine(&vectors[0], &vectors[1]);
    let security_cake = cosine(&vectors[0], &vectors[2]);
    let browsers_support = cosine(&vectors[3], &vectors[4]);
    let browsers_privacy = cosine(&vectors[3], &vectors[1]);
    assert!(security_privacy > security_cake + 0.1, "security~privacy {security_privacy} vs security~cake {security_cake}");
    assert!(browsers_support > browsers_privacy + 0.1, "browsers~support {browsers_support} vs browsers~privacy {browsers_privacy}");
    assert!(security_cake < 0.3, "unrelated sentences must not look alike (padding leaking into the mean does that): {security_cake}");
}

#[tokio::test]
async fn a_text_embeds_the_same_alone_or_in_a_padded_batch() {
    let embedder = embedder();
    let short = "Remember that my bike is a Trek.".to_owned();
    let long = "Parlance is a self-hosted voice assistant: you speak in the browser, the server transcribes the question, \
                a language model answers it with tools and the memory of the conversation, and the answer is spoken back."
        .to_owned();
    let alone = embedder.embed(std::slice::from_ref(&short)).await.unwrap();
    let batched = embedder.embed(&[short, long]).await.unwrap();
    let difference: f32 = alone[0].iter().zip(&batched[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(difference < 1e-4, "padding changed the short text's embedding by {difference}");
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn health_reports_the_local_model_and_its_load_time() {
    let dir = support::installed_model(&MINILM_L6_V2);
    let models_dir = dir.parent().unwrap().to_str().unwrap().to_owned();
    let app = support::app(&support::settings(&["--frontend-dir", "/nonexistent", "--models-dir", &models_dir]));
    let (status, health) = support::send(&app, support::empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK);
    let embeddings = health["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "embeddings").unwrap().clone();
    assert_eq!(embeddings["backend"], "local", "{embeddings}");
    assert_eq!(embeddings["ready"], true);
    assert!(embeddings["load_ms"].is_u64(), "{embeddings}");
}
