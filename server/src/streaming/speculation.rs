//! Answering during the user's pause. When the words heard so far sound finished, the answer starts at once,
//! on the pause's transcript, while the server still waits out the silence that ends the turn: the agent
//! searches the notes, the model writes and the first sentence is synthesised meanwhile, and its events wait
//! unsent. If the turn then ends with nothing said since, the answer is the turn's and its first audio goes
//! out at once. If the user speaks again, it is dropped: nothing of it was sent or stored (the turn stores
//! only once confirmed, see [`TurnEnd`]), and the model stops at its next token.

use std::sync::Arc;
use std::time::Instant;

use super::turn::RunningTurn;
use crate::audio::AudioUpload;
use crate::pipeline::{Conversation, EndSignal, Pipeline, Speech, TurnEnd, TurnInput};
use crate::tts::Delivery;

pub struct Speculation {
    /// Where the speech it answers ends, in samples: speech after it makes the answer stale.
    speech_end: usize,
    signal: EndSignal,
    turn: RunningTurn,
}

impl Speculation {
    /// Starts answering `transcript`, everything said up to `speech_end`.
    pub fn start(pipeline: &Arc<Pipeline>, conversation: Conversation, transcript: String, delivery: Delivery, speech_end: usize) -> Self {
        let (signal, ended) = TurnEnd::later();
        let input = TurnInput::Transcribing { transcript: Box::pin(std::future::ready(Ok(transcript))), recording: None };
        let turn = RunningTurn::spawn(Arc::clone(pipeline), conversation, input, Speech::Sentences(delivery), ended);
        tracing::debug!(speech_end, turn_id = turn.progress.turn_id(), "answering during the pause");
        Self { speech_end, signal, turn }
    }

    /// Whether it answers all the speech heard, which ends at `speech_end`.
    pub fn covers(&self, speech_end: Option<usize>) -> bool {
        speech_end == Some(self.speech_end)
    }

    /// The user's turn ended at `ended_at` with nothing said after the pause: the answer is the turn's.
    /// `recording` is the question's, for the archive.
    pub fn confirm(self, ended_at: Instant, recording: Option<AudioUpload>) -> RunningTurn {
        let Self { signal, turn, .. } = self;
        if let Some(recording) = recording {
            turn.progress.keep_recording(recording);
        }
        signal.ended(ended_at);
        turn
    }
}
