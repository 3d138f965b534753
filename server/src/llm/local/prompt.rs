//! A conversation as ChatML text, the way Qwen2.5's chat template renders it (SmolLM2 reads the same
//! ChatML): tools described in the system turn, earlier tool calls in `<tool_call>` tags, tool results in
//! `<tool_response>` tags inside a user turn, and the opening of the assistant's turn at the end.
//!
//! Rendering is deterministic and a new turn only appends to the previous rendering, so the KV cache of the
//! shared beginning (system prompt, tools, history) can be reused from one call to the next.

use super::tool_call;
use crate::llm::{ChatMessage, ToolSpec};

/// Used when a conversation has no system message but tools must be described somewhere.
const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// The prompt for the model's next assistant turn.
pub fn render(messages: &[ChatMessage], tools: &[ToolSpec]) -> String {
    let mut out = String::new();
    let (system, rest) = match messages.split_first() {
        Some((ChatMessage::System(system), rest)) => (Some(system.as_str()), rest),
        _ => (None, messages),
    };
    if !tools.is_empty() || system.is_some() {
        out.push_str("<|im_start|>system\n");
        out.push_str(system.unwrap_or(DEFAULT_SYSTEM));
        if !tools.is_empty() {
            out.push_str(&tools_section(tools));
        }
        out.push_str("<|im_end|>\n");
    }
    let mut question = None;
    for (index, message) in rest.iter().enumerate() {
        match message {
            ChatMessage::System(text) => turn(&mut out, "system", text),
            ChatMessage::User(text) => {
                question = Some(text.as_str());
                turn(&mut out, "user", text);
            }
            ChatMessage::Assistant { content, tool_calls } if tool_calls.is_empty() => turn(&mut out, "assistant", content),
            ChatMessage::Assistant { content, tool_calls } => {
                out.push_str("<|im_start|>assistant");
                if !content.is_empty() {
                    out.push('\n');
                    out.push_str(content);
                }
                for call in tool_calls {
                    out.push('\n');
                    out.push_str(&tool_call::render(&call.name, &call.arguments));
                }
                out.push_str("<|im_end|>\n");
            }
            ChatMessage::Tool { content, .. } => {
                // Consecutive results share one user turn, in the order of the calls.
                let after_tool = index > 0 && matches!(rest[index - 1], ChatMessage::Tool { .. });
                if !after_tool {
                    out.push_str("<|im_start|>user");
                }
                out.push_str("\n<tool_response>\n");
                out.push_str(content);
                out.push_str("\n</tool_response>");
                if !matches!(rest.get(index + 1), Some(ChatMessage::Tool { .. })) {
                    if let Some(question) = question {
                        out.push_str(&answer_reminder(question));
                    }
                    out.push_str("<|im_end|>\n");
                }
            }
        }
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// The prompt up to the end of the user's last words, without the end of their turn: the model's
/// probability for `<|im_end|>` next is how finished it thinks they are. `None` when the conversation does not
/// end with a user's message. Shares its beginning with [`render`]'s, so the cache serves both.
pub fn render_unfinished(messages: &[ChatMessage], tools: &[ToolSpec]) -> Option<String> {
    if !matches!(messages.last(), Some(ChatMessage::User(_))) {
        return None;
    }
    render(messages, tools).strip_suffix("<|im_end|>\n<|im_start|>assistant\n").map(str::to_owned)
}

/// Said after the tool results. Small models otherwise lose the question behind the results, try to call
/// another tool and open with fragments like "Mark the date and time.", or read whole passages aloud.
fn answer_reminder(question: &str) -> String {
    format!("\nAnswer my question from these results in one or two short sentences of your own: {question}")
}

fn turn(out: &mut String, role: &str, text: &str) {
    out.push_str("<|im_start|>");
    out.push_str(role);
    out.push('\n');
    out.push_str(text);
    out.push_str("<|im_end|>\n");
}

/// Qwen2.5's tool instructions, word for word: the model was trained on them.
fn tools_section(tools: &[ToolSpec]) -> String {
    let mut section = String::from(
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for tool in tools {
        // Keys in the template's order; the schema itself as the caller wrote it.
        section.push_str(&format!(
            "\n{{\"type\": \"function\", \"function\": {{\"name\": {}, \"description\": {}, \"parameters\": {}}}}}",
            tool_call::json_string(&tool.name),
            tool_call::json_string(&tool.description),
            python_json(&tool.parameters)
        ));
    }
    section.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within \
         <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    section
}

/// JSON spaced like Python's `json.dumps` (", " and ": "), as the template's `tojson` writes it.
fn python_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let fields: Vec<String> =
                map.iter().map(|(key, value)| format!("{}: {}", tool_call::json_string(key), python_json(value))).collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(python_json).collect::<Vec<_>>().join(", ")),
        scalar => scalar.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::ToolCall;

    fn search_tool() -> ToolSpec {
        ToolSpec {
            name: "search_knowledge".into(),
            description: "Search the notes.".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        }
    }

    #[test]
    fn a_plain_conversation_is_chatml_ending_with_the_assistant_turn_opened() {
        let prompt = render(
            &[
                ChatMessage::System("Be brief.".into()),
                ChatMessage::User("Hi".into()),
                ChatMessage::Assistant { content: "Hello!".into(), tool_calls: vec![] },
                ChatMessage::User("How are you?".into()),
            ],
            &[],
        );
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
             <|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn tools_are_described_in_the_system_turn_as_qwen_expects() {
        let prompt = render(&[ChatMessage::System("Be brief.".into()), ChatMessage::User("Where?".into())], &[search_tool()]);
        let system = prompt.split("<|im_end|>").next().unwrap();
        assert!(system.starts_with("<|im_start|>system\nBe brief.\n\n# Tools\n\n"), "{system}");
        // Compared as JSON: the key order depends on serde_json's `preserve_order` feature, which other crates
        // switch on in some builds.
        let listed = system.split("<tools>\n").nth(1).and_then(|rest| rest.split("\n</tools>").next()).expect("a <tools> block");
        let listed: serde_json::Value = serde_json::from_str(listed).expect("the tool is described as JSON");
        assert_eq!(
            listed,
            json!({"type": "function", "function": {"name": "search_knowledge", "description": "Search the notes.",
                "parameters": {"properties": {"query": {"type": "string"}}, "required": ["query"], "type": "object"}}}),
            "{system}"
        );
        assert!(system.ends_with("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"));
    }

    #[test]
    fn without_a_system_message_tools_still_get_a_system_turn() {
        let prompt = render(&[ChatMessage::User("Where?".into())], &[search_tool()]);
        assert!(prompt.starts_with("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools"), "{prompt}");
        let no_tools = render(&[ChatMessage::User("Where?".into())], &[]);
        assert_eq!(no_tools, "<|im_start|>user\nWhere?<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn tool_calls_and_their_results_render_as_tagged_turns() {
        let call = |id: &str, query: &str| ToolCall {
            id: id.into(),
            name: "search_knowledge".into(),
            arguments: format!("{{\"query\": \"{query}\"}}"),
        };
        let prompt = render(
            &[
                ChatMessage::User("Where are recordings stored?".into()),
                ChatMessage::Assistant { content: String::new(), tool_calls: vec![call("a", "recordings"), call("b", "storage")] },
                ChatMessage::Tool { call_id: "a".into(), content: "In the data folder.".into() },
                ChatMessage::Tool { call_id: "b".into(), content: "Nothing found.".into() },
            ],
            &[],
        );
        assert!(prompt.ends_with(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"search_knowledge\", \"arguments\": {\"query\": \"recordings\"}}\n</tool_call>\n\
             <tool_call>\n{\"name\": \"search_knowledge\", \"arguments\": {\"query\": \"storage\"}}\n</tool_call><|im_end|>\n\
             <|im_start|>user\n<tool_response>\nIn the data folder.\n</tool_response>\n<tool_response>\nNothing found.\n</tool_response>\n\
             Answer my question from these results in one or two short sentences of your own: Where are recordings stored?<|im_end|>\n\
             <|im_start|>assistant\n"
        ), "{prompt}");
    }

    #[test]
    fn a_new_turn_only_appends_to_the_previous_prompt() {
        let mut messages = vec![ChatMessage::System("Be brief.".into()), ChatMessage::User("Hi".into())];
        let first = render(&messages, &[search_tool()]);
        messages.push(ChatMessage::Assistant { content: "Hello!".into(), tool_calls: vec![] });
        messages.push(ChatMessage::User("Bye".into()));
        let second = render(&messages, &[search_tool()]);
        assert!(second.starts_with(&first), "the earlier prompt, generation opening included, is a prefix");
    }
}
