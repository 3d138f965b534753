//! Any text as a socket message: read as the socket reads it, and anything accepted must survive being written
//! and read again unchanged.

use parlance_shared::ClientMessage;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        if let Ok(message) = serde_json::from_str::<ClientMessage>(text) {
            let written = serde_json::to_string(&message).expect("an accepted message can be written");
            let again: ClientMessage = serde_json::from_str(&written).expect("a written message can be read");
            assert_eq!(again, message);
        }
    });
}
