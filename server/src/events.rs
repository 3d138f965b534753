//! Where a turn reports its progress as it happens. The HTTP endpoints answer once at the end and pass
//! [`EventSink::none`]; a streaming client (WebSocket) passes a channel and forwards what arrives.

use parlance_shared::ServerEvent;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Default)]
pub struct EventSink(Option<mpsc::UnboundedSender<ServerEvent>>);

impl EventSink {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn channel() -> (Self, mpsc::UnboundedReceiver<ServerEvent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self(Some(sender)), receiver)
    }

    pub fn emit(&self, event: ServerEvent) {
        if let Some(sender) = &self.0 {
            // A listener that went away (client disconnected) must not fail the turn.
            let _ = sender.send(event);
        }
    }
}
