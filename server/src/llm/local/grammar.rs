//! The GBNF grammar (llama.cpp's grammar format) of a tool call in Qwen2.5's format, naming one of the
//! offered tools with arguments that match its JSON schema. Under it a small model cannot misspell a tool,
//! invent one, or write broken JSON.
//!
//! Supported schemas: objects whose properties are strings, integers, numbers, booleans or enums (also as
//! `["string", "null"]` type lists), with required and optional properties. Anything else (arrays, nested
//! objects, no type) is accepted as any JSON value.

use serde_json::Value;

use super::tool_call;
use crate::llm::ToolSpec;

/// The grammar's start rule.
pub const ROOT: &str = "root";

/// Rules every grammar shares: JSON values, written the way `json.dumps` writes them (", " and ": ").
/// Strings are never empty (an empty argument never helps a tool) and never hold raw control characters.
const JSON_RULES: &str = r#"string ::= "\"" char+ "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])
integer ::= "-"? ("0" | [1-9] [0-9]*)
number ::= integer ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" (string ": " value (", " string ": " value)*)? "}"
array ::= "[" (value (", " value)*)? "]"
"#;

/// The grammar for a call of one of `tools` (which must not be empty).
pub fn tool_call_grammar(tools: &[ToolSpec]) -> String {
    let mut rules = Vec::new();
    let calls: Vec<String> = (0..tools.len()).map(|index| format!("call-{index}")).collect();
    rules.push(format!(
        "{ROOT} ::= {} ({}) {}",
        literal(&format!("{}{}", tool_call::OPEN, tool_call::NAME_KEY)),
        calls.join(" | "),
        literal(&format!("}}{}", tool_call::CLOSE)),
    ));
    for (index, tool) in tools.iter().enumerate() {
        let prefix = format!("call-{index}");
        let arguments = object_rule(&prefix, &tool.parameters, &mut rules);
        rules.push(format!(
            "{prefix} ::= {} {arguments}",
            literal(&format!("{}{}", tool_call::json_string(&tool.name), tool_call::ARGUMENTS_KEY))
        ));
    }
    let mut grammar = rules.join("\n");
    grammar.push('\n');
    grammar.push_str(JSON_RULES);
    grammar
}

/// The rule body for an arguments object with `schema`; helper rules (one per property) go into `rules`.
fn object_rule(prefix: &str, schema: &Value, rules: &mut Vec<String>) -> String {
    let Some(properties) = schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty()) else {
        return literal("{}");
    };
    let required: Vec<&str> = schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut mandatory = Vec::new();
    let mut optional = Vec::new();
    // By name: the same grammar whichever key order serde_json keeps (other crates switch on its
    // `preserve_order` feature in some builds of the workspace).
    let mut properties: Vec<(&String, &Value)> = properties.iter().collect();
    properties.sort_by(|a, b| a.0.cmp(b.0));
    for (index, (name, property)) in properties.into_iter().enumerate() {
        let value_rule = format!("{prefix}-p{index}");
        rules.push(format!("{value_rule} ::= {}", value_rule_body(property)));
        let pair = format!("{} {value_rule}", literal(&format!("{}: ", tool_call::json_string(name))));
        if required.contains(&name.as_str()) { mandatory.push(pair) } else { optional.push(pair) }
    }

    let mut body = vec![literal("{")];
    body.push(mandatory.join(&format!(" {} ", literal(", "))));
    if mandatory.is_empty() {
        // Without a required property, the first one present has no comma before it: choose which it is.
        let alternatives: Vec<String> = (0..optional.len())
            .map(|first| {
                let rest: String = optional[first + 1..].iter().map(|pair| format!(" ({} {pair})?", literal(", "))).collect();
                format!("{}{rest}", optional[first])
            })
            .collect();
        body.push(format!("({})?", alternatives.join(" | ")));
    } else {
        body.extend(optional.iter().map(|pair| format!("({} {pair})?", literal(", "))));
    }
    body.push(literal("}"));
    body.retain(|part| !part.is_empty());
    body.join(" ")
}

fn value_rule_body(property: &Value) -> String {
    if let Some(choices) = property.get("enum").and_then(Value::as_array).filter(|c| !c.is_empty()) {
        return choices.iter().map(|choice| literal(&choice.to_string())).collect::<Vec<_>>().join(" | ");
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let rules: Vec<&str> = types
        .iter()
        .map(|kind| match *kind {
            "string" => "string",
            "integer" => "integer",
            "number" => "number",
            "boolean" => "boolean",
            "null" => "null",
            _ => "value",
        })
        .collect();
    if rules.is_empty() { "value".to_owned() } else { rules.join(" | ") }
}

/// `text` as a GBNF string literal: quotes, backslashes and control characters escaped.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec { name: name.to_owned(), description: String::new(), parameters }
    }

    /// The rule named `name`, for asserting on its body.
    fn rule<'a>(grammar: &'a str, name: &str) -> &'a str {
        let start = format!("{name} ::= ");
        grammar.lines().find_map(|line| line.strip_prefix(start.as_str())).unwrap_or_else(|| panic!("no rule {name} in\n{grammar}"))
    }

    /// Reads a GBNF string literal back into its text (the inverse of `literal`, for the escapes it writes).
    fn unliteral(text: &str) -> String {
        let inner = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).expect("a quoted literal");
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                Some(other) => out.push(other),
                None => panic!("dangling backslash in {text}"),
            }
        }
        out
    }

    /// Every rule that is used is defined, once: llama.cpp refuses the grammar otherwise.
    fn assert_well_formed(grammar: &str) {
        let defined: Vec<&str> = grammar.lines().filter_map(|line| line.split_once(" ::= ").map(|(name, _)| name)).collect();
        let mut unique = defined.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), defined.len(), "a rule is defined twice in\n{grammar}");
        for line in grammar.lines() {
            let (_, body) = line.split_once(" ::= ").expect("one rule per line");
            let without_literals = strip_literals_and_classes(body);
            for word in without_literals.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).filter(|w| !w.is_empty()) {
                assert!(defined.contains(&word), "rule {word} is used but not defined in\n{grammar}");
            }
        }
    }

    fn strip_literals_and_classes(body: &str) -> String {
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            let close = match c {
                '"' => '"',
                '[' => ']',
                _ => {
                    out.push(c);
                    continue;
                }
            };
            while let Some(inner) = chars.next() {
                if inner == '\\' {
                    chars.next();
                } else if inner == close {
                    break;
                }
            }
            out.push(' ');
        }
        out
    }

    #[test]
    fn a_call_names_one_of_the_offered_tools_in_qwens_tags() {
        let grammar = tool_call_grammar(&[
            tool("search_knowledge", json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})),
            tool("current_time", json!({"type": "object", "properties": {}})),
        ]);
        assert_well_formed(&grammar);
        let call = rule(&grammar, ROOT);
        assert!(call.starts_with(r#""<tool_call>\n{\"name\": " (call-0 | call-1) "#), "{call}");
        assert!(call.ends_with(r#""}\n</tool_call>""#), "{call}");
        assert_eq!(rule(&grammar, "call-0"), r#""\"search_knowledge\", \"arguments\": " "{" "\"query\": " call-0-p0 "}""#);
        assert_eq!(rule(&grammar, "call-0-p0"), "string");
        assert_eq!(rule(&grammar, "call-1"), r#""\"current_time\", \"arguments\": " "{}""#);
    }

    #[test]
    fn optional_properties_may_be_left_out_and_required_ones_come_first() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a_limit": {"type": "integer"},
                "b_query": {"type": "string"},
                "c_exact": {"type": "boolean"},
            },
            "required": ["b_query"],
        });
        let grammar = tool_call_grammar(&[tool("search", schema)]);
        assert_well_formed(&grammar);
        assert_eq!(
            rule(&grammar, "call-0"),
            r#""\"search\", \"arguments\": " "{" "\"b_query\": " call-0-p1 (", " "\"a_limit\": " call-0-p0)? (", " "\"c_exact\": " call-0-p2)? "}""#
        );
        assert_eq!(rule(&grammar, "call-0-p0"), "integer");
        assert_eq!(rule(&grammar, "call-0-p2"), "boolean");
    }

    #[test]
    fn with_only_optional_properties_any_of_them_can_come_first_or_none() {
        let schema = json!({"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": ["string", "null"]}}});
        let grammar = tool_call_grammar(&[tool("plot", schema)]);
        assert_well_formed(&grammar);
        let call = rule(&grammar, "call-0");
        assert!(call.ends_with(r#""{" ("\"x\": " call-0-p0 (", " "\"y\": " call-0-p1)? | "\"y\": " call-0-p1)? "}""#), "{call}");
        assert_eq!(rule(&grammar, "call-0-p1"), "string | null");
    }

    #[test]
    fn enums_allow_exactly_their_values() {
        let schema = json!({
            "type": "object",
            "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "level": {"enum": [1, 2]}},
            "required": ["unit", "level"],
        });
        let grammar = tool_call_grammar(&[tool("weather", schema)]);
        assert_well_formed(&grammar);
        assert_eq!(rule(&grammar, "call-0-p1"), r#""\"celsius\"" | "\"fahrenheit\"""#);
        assert_eq!(rule(&grammar, "call-0-p0"), r#""1" | "2""#);
    }

    #[test]
    fn tools_without_arguments_take_an_empty_object() {
        for parameters in [json!({"type": "object", "properties": {}}), json!({"type": "object"}), Value::Null] {
            let grammar = tool_call_grammar(&[tool("current_time", parameters)]);
            assert_well_formed(&grammar);
            assert!(rule(&grammar, "call-0").ends_with(r#" "{}""#));
        }
    }

    #[test]
    fn names_that_need_escaping_are_written_as_the_json_the_model_must_produce() {
        let name = "say \"hi\"\\now\n";
        let property = "odd \"key\"";
        let grammar = tool_call_grammar(&[tool(
            name,
            json!({"type": "object", "properties": {property: {"type": "string"}}, "required": [property]}),
        )]);
        assert_well_formed(&grammar);
        let call = rule(&grammar, "call-0");
        let name_literal = &call[..call.find("\" ").unwrap() + 1];
        assert_eq!(unliteral(name_literal), format!("{}, \"arguments\": ", tool_call::json_string(name)));
        assert!(!call.contains('\n'), "a raw newline would end the rule: {call}");
        let key_literal = call.split(" \"{\" ").nth(1).unwrap().split(" call-0-p0").next().unwrap();
        assert_eq!(unliteral(key_literal), "\"odd \\\"key\\\"\": ");
    }

    #[test]
    fn unsupported_property_types_accept_any_json_value() {
        let schema =
            json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]});
        let grammar = tool_call_grammar(&[tool("tag", schema)]);
        assert_well_formed(&grammar);
        assert_eq!(rule(&grammar, "call-0-p0"), "value");
    }
}
