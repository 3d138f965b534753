//! The text form of a tool call in Qwen2.5's chat format, the one the model was trained on:
//! `<tool_call>\n{"name": "NAME", "arguments": {...}}\n</tool_call>`. The grammar forces exactly this shape,
//! the prompt renders earlier calls in it, and the worker reads the model's call back from it.

use serde_json::Value;

pub const OPEN: &str = "<tool_call>\n";
pub const CLOSE: &str = "\n</tool_call>";
/// What comes between the name and the arguments object, as Python's `json.dumps` (the template's `tojson`)
/// spaces it.
pub const ARGUMENTS_KEY: &str = ", \"arguments\": ";
pub const NAME_KEY: &str = "{\"name\": ";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ToolCallError {
    #[error("the tool call is not wrapped in <tool_call> tags")]
    NotWrapped,
    #[error("the tool call is not a JSON object with a name and arguments: {0}")]
    NotJson(String),
}

/// `name` and `arguments` (JSON text, or anything a model once wrote there) as the model writes a call.
pub fn render(name: &str, arguments: &str) -> String {
    let arguments = if arguments.trim().is_empty() { "{}" } else { arguments.trim() };
    format!("{OPEN}{NAME_KEY}{}{ARGUMENTS_KEY}{arguments}}}{CLOSE}", json_string(name))
}

/// The tool name and the arguments as compact JSON text, from what the model generated.
pub fn parse(text: &str) -> Result<(String, String), ToolCallError> {
    let body = text
        .trim()
        .strip_prefix(OPEN.trim_end())
        .and_then(|rest| rest.strip_suffix(CLOSE.trim_start()))
        .ok_or(ToolCallError::NotWrapped)?;
    #[derive(serde::Deserialize)]
    struct Call {
        name: String,
        #[serde(default)]
        arguments: Option<Value>,
    }
    let call: Call = serde_json::from_str(body.trim()).map_err(|e| ToolCallError::NotJson(e.to_string()))?;
    let arguments = call.arguments.unwrap_or_else(|| Value::Object(Default::default()));
    Ok((call.name, arguments.to_string()))
}

/// A string as a JSON string literal, quotes included.
pub fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_call_parses_back_to_its_name_and_arguments() {
        let text = render("search_knowledge", r#"{"query": "where are recordings stored"}"#);
        assert_eq!(
            text,
            "<tool_call>\n{\"name\": \"search_knowledge\", \"arguments\": {\"query\": \"where are recordings stored\"}}\n</tool_call>"
        );
        let (name, arguments) = parse(&text).unwrap();
        assert_eq!(name, "search_knowledge");
        assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), serde_json::json!({"query": "where are recordings stored"}));
    }

    #[test]
    fn names_with_quotes_survive_the_round_trip() {
        let (name, arguments) = parse(&render("say \"hi\"\\now", "")).unwrap();
        assert_eq!(name, "say \"hi\"\\now");
        assert_eq!(arguments, "{}");
    }

    #[test]
    fn text_that_is_not_a_call_is_refused() {
        assert_eq!(parse("{\"name\": \"x\"}"), Err(ToolCallError::NotWrapped));
        assert!(matches!(parse("<tool_call>\n{\"name\": \n</tool_call>"), Err(ToolCallError::NotJson(_))));
    }
}
