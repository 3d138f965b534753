//! The agent's knowledge tools on a real database and real embeddings: what the model gets back, and the
//! sources a turn lists.

use crate::support;

use std::sync::Arc;

use parlance_server::access::Caller;
use parlance_server::agent::tools::{REMEMBER_SOURCE, Remember, SearchKnowledge, Tool, ToolRegistry};
use parlance_server::embeddings::Embedder;
use parlance_server::knowledge::seed::seed;
use parlance_server::knowledge::{KnowledgeBase, SearchMode};
use parlance_server::llm::ToolCall;
use parlance_server::store::Database;
use serde_json::json;

async fn knowledge(dir: &std::path::Path) -> Arc<KnowledgeBase> {
    let embedder: Arc<dyn Embedder> = Arc::new(support::local_embeddings());
    let knowledge = Arc::new(KnowledgeBase::new(Arc::new(Database::new(dir)), Some(embedder)));
    seed(&knowledge).await.expect("seeded");
    knowledge
}

#[tokio::test]
async fn search_knowledge_hands_the_model_the_passages_and_lists_them_as_sources() {
    let dir = tempfile::tempdir().unwrap();
    let tools = ToolRegistry::new().with(SearchKnowledge::new(knowledge(dir.path()).await));
    let call =
        ToolCall { id: "c1".into(), name: "search_knowledge".into(), arguments: r#"{"query": "is my voice sent to the cloud"}"#.into() };
    let outcome = tools.run(&call, &Caller::Anyone).await;

    assert!(outcome.content.contains("never leave the machine"), "the passage itself reaches the model: {}", outcome.content);
    assert!((1..=3).contains(&outcome.sources.len()));
    assert!(outcome.sources.iter().any(|s| s.title == "Privacy note"), "{:?}", outcome.sources);
    assert!(outcome.sources.windows(2).all(|pair| pair[0].score >= pair[1].score));

    let empty = ToolCall { id: "c2".into(), name: "search_knowledge".into(), arguments: r#"{"query": "  "}"#.into() };
    let refused = tools.run(&empty, &Caller::Anyone).await;
    assert!(refused.content.starts_with("error: invalid arguments"), "{}", refused.content);
    assert!(refused.sources.is_empty());
}

#[tokio::test]
async fn remember_stores_a_fact_that_later_searches_find() {
    let dir = tempfile::tempdir().unwrap();
    let knowledge = knowledge(dir.path()).await;
    let before = knowledge.count().await.unwrap();
    let remember = Remember::new(Arc::clone(&knowledge));

    let output = remember.call(json!({"fact": "The user's bike is a Trek."}), &Caller::Anyone).await.unwrap();
    assert_eq!(output.content, "Saved: The user's bike is a Trek.");
    let again = remember.call(json!({"fact": "The user's bike is a Trek."}), &Caller::Anyone).await.unwrap();
    assert!(again.content.starts_with("Already known"), "{}", again.content);
    assert_eq!(knowledge.count().await.unwrap(), before + 1);

    let hits = knowledge.search(&Caller::Anyone, "what kind of bicycle do I ride", 3, SearchMode::Hybrid).await.unwrap();
    assert_eq!(hits[0].text, "The user's bike is a Trek.");
    assert_eq!(hits[0].source.as_deref(), Some(REMEMBER_SOURCE));
    assert!(remember.call(json!({}), &Caller::Anyone).await.is_err(), "a call without a fact is refused");
}
