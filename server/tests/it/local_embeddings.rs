//! all-MiniLM-L6-v2 running in-process on the real weights (installed by the real installer if missing).

use crate::support;

use axum::http::StatusCode;
use parlance_server::embeddings::{Embedder, LocalEmbeddings};
use parlance_server::models::catalog::{MINILM_L6_V2, ONNX_RUNTIME};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn embedder() -> LocalEmbeddings {
    support::local_embeddings()
}

/// The same sentence vectors through candle's BERT (the reference implementation of the model in Rust):
/// encoder output, mean over the real tokens, L2-normalised, one text at a time (no padding).
fn candle_reference(texts: &[&str]) -> Vec<Vec<f32>> {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::{BertModel, Config, DTYPE};
    let dir = support::installed_model(&MINILM_L6_V2);
    let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let weights =
        candle_nn::VarBuilder::from_buffered_safetensors(std::fs::read(dir.join("model.safetensors")).unwrap(), DTYPE, &Device::Cpu)
            .unwrap();
    let model = BertModel::load(weights, &config).unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tokenizer.with_padding(None);
    texts
        .iter()
        .map(|text| {
            let ids = tokenizer.encode(*text, true).unwrap().get_ids().to_vec();
            let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            let hidden = model.forward(&input, &input.zeros_like().unwrap(), None).unwrap();
            let mean = hidden.mean(1).unwrap().to_dtype(DType::F32).unwrap();
            let norm = mean.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
            mean.broadcast_div(&norm).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_onnx_graph_gives_the_vectors_of_the_reference_bert() {
    let texts = [
        "How does this app handle security?",
        "Remember that my bike is a Trek.",
        "Parlance is a self-hosted voice assistant: you speak in the browser, the server transcribes the question, \
         a language model answers it with tools and the memory of the conversation, and the answer is spoken back.",
    ];
    let reference = candle_reference(&texts);
    // Batched, so the two shorter texts are padded: padding must not show either.
    let vectors = embedder().embed(&texts.map(String::from)).await.unwrap();
    for ((text, ours), theirs) in texts.iter().zip(&vectors).zip(&reference) {
        let largest = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(
            cosine(ours, theirs) > 0.99999 && largest < 1e-3,
            "{text:?}: cosine {}, largest difference {largest}",
            cosine(ours, theirs)
        );
    }
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
    support::installed_model(&ONNX_RUNTIME);
    let models_dir = dir.parent().unwrap().to_str().unwrap().to_owned();
    let app = support::app(&support::settings(&["--frontend-dir", "/nonexistent", "--models-dir", &models_dir]));
    let (status, health) = support::send(&app, support::empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK);
    let embeddings = health["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "embeddings").unwrap().clone();
    assert_eq!(embeddings["backend"], "local", "{embeddings}");
    assert_eq!(embeddings["ready"], true);
    assert!(embeddings["load_ms"].is_u64(), "{embeddings}");
}
