//! `POST /v1/chat/completions` with `stream: true` and function tools, as OpenAI, Ollama, llama.cpp server
//! and vLLM speak it. Tool calls arrive in fragments spread over many events; they are assembled here and
//! handed on whole once the model has finished.

use std::collections::BTreeMap;

use async_trait::async_trait;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{ChatEvent, ChatMessage, ChatModel, ChatRequest, ChatStream, LlmError, ToolCall};
use crate::backend::BackendInfo;
use crate::openai::{OpenAiClient, ProviderError, transport_error};

const PATH: &str = "chat/completions";

pub struct OpenAiChat {
    client: OpenAiClient,
}

impl OpenAiChat {
    pub fn new(client: OpenAiClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let wire = WireRequest {
            model: self.client.model(),
            messages: request.messages.iter().map(WireMessage::from).collect(),
            tools: request
                .tools
                .iter()
                .map(|tool| WireTool {
                    kind: "function",
                    function: WireFunction { name: &tool.name, description: &tool.description, parameters: &tool.parameters },
                })
                .collect(),
            stream: true,
        };
        let endpoint = self.client.shown(PATH);
        // Never repeated once the provider has it: it may already be writing (and billing) the answer.
        let response = self.client.open_stream(PATH, |builder| Ok(builder.json(&wire))).await?;
        let events = response.bytes_stream().eventsource();

        let stream = async_stream::try_stream! {
            let mut calls: BTreeMap<usize, PartialCall> = BTreeMap::new();
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let event = event.map_err(|error| match error {
                    EventStreamError::Transport(e) => transport_error(&endpoint, &e),
                    other => invalid(&endpoint, format!("broken event stream ({other})")),
                })?;
                if event.data.trim() == "[DONE]" {
                    break;
                }
                let chunk: Chunk = serde_json::from_str(&event.data)
                    .map_err(|e| invalid(&endpoint, format!("unreadable stream event ({e})")))?;
                if let Some(error) = chunk.error {
                    tracing::warn!(%endpoint, %error, "provider reported an error mid-stream");
                    Err(invalid(&endpoint, "the provider stopped with an error".to_owned()))?;
                }
                for choice in chunk.choices {
                    if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                        yield ChatEvent::TextDelta(text);
                    }
                    for fragment in choice.delta.tool_calls {
                        calls.entry(fragment.index).or_default().absorb(fragment);
                    }
                }
            }
            for (index, call) in calls {
                yield ChatEvent::ToolCall(call.finish(index));
            }
        };
        Ok(stream.map(|item: Result<ChatEvent, ProviderError>| item.map_err(LlmError::from)).boxed())
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }

    async fn reachable(&self) -> Result<(), ProviderError> {
        self.client.probe(crate::backend::PROBE_TIMEOUT).await
    }
}

fn invalid(endpoint: &str, reason: String) -> ProviderError {
    ProviderError::InvalidResponse { endpoint: endpoint.to_owned(), reason }
}

#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

impl PartialCall {
    fn absorb(&mut self, fragment: DeltaToolCall) {
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            self.id = Some(id);
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name {
                self.name.push_str(&name);
            }
            if let Some(arguments) = function.arguments {
                self.arguments.push_str(&arguments);
            }
        }
    }

    fn finish(self, index: usize) -> ToolCall {
        // Some compatible servers omit ids; the follow-up request still needs one to pair the result.
        ToolCall { id: self.id.unwrap_or_else(|| format!("call_{index}")), name: self.name, arguments: self.arguments }
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    stream: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        /// `null` rather than absent when the model only called tools: some servers insist on the field.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(message: &'a ChatMessage) -> Self {
        match message {
            ChatMessage::System(content) => Self::System { content },
            ChatMessage::User(content) => Self::User { content },
            ChatMessage::Assistant { content, tool_calls } => Self::Assistant {
                content: (!content.is_empty()).then_some(content.as_str()),
                tool_calls: tool_calls
                    .iter()
                    .map(|call| WireToolCall {
                        id: &call.id,
                        kind: "function",
                        function: WireFunctionCall { name: &call.name, arguments: &call.arguments },
                    })
                    .collect(),
            },
            ChatMessage::Tool { call_id, content } => Self::Tool { tool_call_id: call_id, content },
        }
    }
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Default, Deserialize)]
struct Delta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<DeltaToolCall>,
}

#[derive(Deserialize)]
struct DeltaToolCall {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    function: Option<DeltaFunction>,
}

#[derive(Deserialize)]
struct DeltaFunction {
    name: Option<String>,
    arguments: Option<String>,
}
