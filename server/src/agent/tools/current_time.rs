use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Tool, ToolError, ToolOutput};
use crate::access::Caller;

/// The server's local date and time: models know neither.
pub struct CurrentTime;

#[async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "Get the current date, time and weekday. Use it whenever the user asks about the time or date."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    async fn call(&self, _arguments: Value, _caller: &Caller) -> Result<ToolOutput, ToolError> {
        let now = chrono::Local::now();
        Ok(ToolOutput { content: now.format("%A %-d %B %Y, %H:%M (UTC%:z)").to_string(), sources: vec![] })
    }
}
