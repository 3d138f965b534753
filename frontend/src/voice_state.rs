//! Where a turn is, as one explicit state machine: Ready -> Listening -> Uploading -> Thinking -> Speaking ->
//! Ready, plus Error. A turn streamed over the live connection skips Uploading (the audio is already at the
//! server when the user stops) and starts Speaking with its first sentence. Pure Rust (no browser types), so every transition is unit-tested natively.
//!
//! The UI only ever changes state through [`VoiceState::on`]: a transition the table does not allow is refused,
//! which is what stops double submits (a second turn while one is in flight) and stale events (a recording that
//! finishes after "New conversation") from reaching the server or the screen.

/// The turn's state; it drives the status line, the mic button's look and what input is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceState {
    /// Waiting for the user.
    Ready,
    /// The microphone is recording.
    Listening,
    /// The recording is on its way to the server.
    Uploading,
    /// The server is transcribing and answering.
    Thinking,
    /// The spoken answer is playing.
    Speaking,
    /// The last turn failed; the message says why in a sentence for people. A new turn may start.
    Error(String),
}

/// Something that happened, from the user, the recorder, the network or the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceEvent {
    /// The mic button (or Space) went down, asking for a new spoken turn.
    StartListening,
    /// The recording ended and holds audio: it is being sent.
    RecordingFinished,
    /// The recording ended with nothing worth sending (a slip of the finger): back to Ready, no request.
    RecordingDiscarded,
    /// A typed question was submitted: there is nothing to upload, so it goes straight to Thinking.
    TextSubmitted,
    /// The server has the whole recording; now it works on the answer.
    UploadComplete,
    /// The answer arrived. With audio it is spoken, otherwise the turn is over.
    AnswerReceived { has_audio: bool },
    /// Playback ended by itself or by the stop button.
    PlaybackFinished,
    /// A streamed recording ended: the server has the audio already, so the turn goes straight to Thinking.
    StreamEnded,
    /// The first sentence of a streamed answer arrived and is playing while the rest is still being written.
    AnswerStarted,
    /// Hands-free: the server heard no words in what the detector took for speech; the mic stays open.
    NothingHeard,
    /// The microphone, the recorder, the network or the server failed.
    Failed(String),
    /// "New conversation": whatever was going on is abandoned.
    Reset,
}

/// A transition the state machine does not allow; the event is ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed while {state:?}")]
pub struct Refused {
    pub state: VoiceState,
    pub event: VoiceEvent,
}

/// How the mic button looks; each has its own CSS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicLook {
    Idle,
    Recording,
    Busy,
    /// Pressing it interrupts the answer being spoken.
    Interrupt,
}

impl VoiceState {
    /// The state after `event`, or [`Refused`] if the event makes no sense now.
    pub fn on(&self, event: VoiceEvent) -> Result<VoiceState, Refused> {
        use VoiceEvent as E;
        use VoiceState as S;
        let next = match (self, &event) {
            (_, E::Reset) => S::Ready,
            // A new turn may start when nothing is in flight; interrupting playback is the one way to cut in.
            (S::Ready | S::Error(_) | S::Speaking, E::StartListening) => S::Listening,
            (S::Ready | S::Error(_) | S::Speaking, E::TextSubmitted) => S::Thinking,
            (S::Listening, E::RecordingFinished) => S::Uploading,
            (S::Listening, E::RecordingDiscarded) => S::Ready,
            (S::Uploading, E::UploadComplete) => S::Thinking,
            // Some browsers report the end of the upload only with the response: skip straight through.
            (S::Uploading | S::Thinking, E::AnswerReceived { has_audio: true }) => S::Speaking,
            (S::Uploading | S::Thinking, E::AnswerReceived { has_audio: false }) => S::Ready,
            (S::Speaking, E::PlaybackFinished) => S::Ready,
            (S::Listening, E::StreamEnded) => S::Thinking,
            (S::Thinking, E::AnswerStarted) => S::Speaking,
            (S::Thinking, E::NothingHeard) => S::Listening,
            (S::Listening | S::Uploading | S::Thinking | S::Speaking, E::Failed(message)) => S::Error(message.clone()),
            _ => return Err(Refused { state: self.clone(), event }),
        };
        Ok(next)
    }

    /// Whether a new turn (spoken or typed) may start now.
    pub fn accepts_new_turn(&self) -> bool {
        matches!(self, Self::Ready | Self::Error(_) | Self::Speaking)
    }

    /// A request is on its way or being answered: the moment a second one would race it.
    pub fn in_flight(&self) -> bool {
        matches!(self, Self::Uploading | Self::Thinking)
    }

    /// The live status line, read out by screen readers on every change.
    pub fn status_text(&self) -> String {
        match self {
            Self::Ready => "Ready. Hold the microphone button (or Space) to talk, or tap it to start and stop.".to_owned(),
            Self::Listening => "Listening… release (or tap again) when you are done.".to_owned(),
            Self::Uploading => "Sending your recording…".to_owned(),
            Self::Thinking => "Thinking…".to_owned(),
            Self::Speaking => "Speaking… press Stop to cut it short.".to_owned(),
            Self::Error(message) => message.clone(),
        }
    }

    /// A stable name for styling and for tests (`data-state`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Listening => "listening",
            Self::Uploading => "uploading",
            Self::Thinking => "thinking",
            Self::Speaking => "speaking",
            Self::Error(_) => "error",
        }
    }

    pub fn mic_look(&self) -> MicLook {
        match self {
            Self::Ready | Self::Error(_) => MicLook::Idle,
            Self::Listening => MicLook::Recording,
            Self::Uploading | Self::Thinking => MicLook::Busy,
            Self::Speaking => MicLook::Interrupt,
        }
    }

    /// The mic button's accessible name, which says what pressing it does now.
    pub fn mic_label(&self) -> &'static str {
        match self.mic_look() {
            MicLook::Idle => "Talk",
            MicLook::Recording => "Stop recording",
            MicLook::Busy => "Working on your question",
            MicLook::Interrupt => "Interrupt and talk",
        }
    }
}

impl MicLook {
    pub fn class(self) -> &'static str {
        match self {
            Self::Idle => "mic",
            Self::Recording => "mic recording",
            Self::Busy => "mic busy",
            Self::Interrupt => "mic interrupt",
        }
    }
}

/// A place in the server's line as people say it: "next in line", "number 3 in line".
pub fn queue_words(place: u32) -> String {
    match place {
        0 | 1 => "next in line".to_owned(),
        n => format!("number {n} in line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VoiceEvent as E;
    use VoiceState as S;

    fn all_states() -> Vec<VoiceState> {
        vec![S::Ready, S::Listening, S::Uploading, S::Thinking, S::Speaking, S::Error("no".into())]
    }

    fn run(start: VoiceState, events: &[VoiceEvent]) -> Vec<VoiceState> {
        let mut state = start;
        let mut seen = vec![state.clone()];
        for event in events {
            state = state.on(event.clone()).unwrap_or_else(|refused| panic!("{refused}"));
            seen.push(state.clone());
        }
        seen
    }

    #[test]
    fn a_place_in_line_reads_naturally() {
        assert_eq!(queue_words(1), "next in line");
        assert_eq!(queue_words(3), "number 3 in line");
    }

    #[test]
    fn a_spoken_turn_goes_through_every_state_and_back() {
        let seen = run(
            S::Ready,
            &[E::StartListening, E::RecordingFinished, E::UploadComplete, E::AnswerReceived { has_audio: true }, E::PlaybackFinished],
        );
        assert_eq!(seen, [S::Ready, S::Listening, S::Uploading, S::Thinking, S::Speaking, S::Ready]);
    }

    #[test]
    fn a_streamed_turn_skips_uploading_and_speaks_from_the_first_sentence() {
        let seen = run(S::Ready, &[E::StartListening, E::StreamEnded, E::AnswerStarted, E::PlaybackFinished]);
        assert_eq!(seen, [S::Ready, S::Listening, S::Thinking, S::Speaking, S::Ready]);
        assert_eq!(run(S::Ready, &[E::TextSubmitted, E::AnswerStarted]), [S::Ready, S::Thinking, S::Speaking]);
    }

    #[test]
    fn a_streamed_answer_without_audio_ends_the_turn_when_done() {
        assert_eq!(run(S::Listening, &[E::StreamEnded, E::AnswerReceived { has_audio: false }]), [S::Listening, S::Thinking, S::Ready]);
    }

    #[test]
    fn hands_free_keeps_listening_when_nothing_was_heard() {
        assert_eq!(S::Thinking.on(E::NothingHeard), Ok(S::Listening));
        for state in [S::Ready, S::Listening, S::Speaking, S::Uploading] {
            assert!(state.on(E::NothingHeard).is_err(), "{state:?}");
        }
    }

    #[test]
    fn streamed_events_out_of_place_are_refused() {
        assert!(S::Ready.on(E::StreamEnded).is_err(), "a late end of a cancelled recording");
        assert!(S::Ready.on(E::AnswerStarted).is_err(), "a late chunk after a reset");
        assert!(S::Speaking.on(E::AnswerStarted).is_err());
        assert!(S::Uploading.on(E::StreamEnded).is_err());
    }

    #[test]
    fn a_typed_turn_skips_listening_and_uploading() {
        assert_eq!(run(S::Ready, &[E::TextSubmitted, E::AnswerReceived { has_audio: true }]), [S::Ready, S::Thinking, S::Speaking]);
    }

    #[test]
    fn an_answer_without_audio_ends_the_turn() {
        assert_eq!(run(S::Thinking, &[E::AnswerReceived { has_audio: false }]), [S::Thinking, S::Ready]);
    }

    #[test]
    fn an_answer_reported_before_the_upload_completed_still_lands() {
        assert_eq!(S::Uploading.on(E::AnswerReceived { has_audio: true }), Ok(S::Speaking));
    }

    #[test]
    fn no_second_turn_while_one_is_in_flight() {
        for busy in [S::Listening, S::Uploading, S::Thinking] {
            assert!(!busy.accepts_new_turn(), "{busy:?}");
            assert!(busy.on(E::TextSubmitted).is_err(), "typed question while {busy:?}");
        }
        for busy in [S::Uploading, S::Thinking] {
            assert_eq!(busy.on(E::StartListening), Err(Refused { state: busy.clone(), event: E::StartListening }));
            assert!(busy.in_flight());
        }
    }

    #[test]
    fn playback_can_be_interrupted_by_a_new_turn() {
        assert_eq!(S::Speaking.on(E::StartListening), Ok(S::Listening));
        assert_eq!(S::Speaking.on(E::TextSubmitted), Ok(S::Thinking));
        assert!(S::Speaking.accepts_new_turn());
        assert!(!S::Speaking.in_flight());
    }

    #[test]
    fn failures_become_the_error_state_with_their_message_and_a_new_turn_may_follow() {
        for state in [S::Listening, S::Uploading, S::Thinking, S::Speaking] {
            let failed = state.on(E::Failed("Microphone access was denied.".into())).unwrap();
            assert_eq!(failed, S::Error("Microphone access was denied.".into()));
            assert_eq!(failed.status_text(), "Microphone access was denied.");
            assert_eq!(failed.on(E::StartListening), Ok(S::Listening));
            assert_eq!(failed.on(E::TextSubmitted), Ok(S::Thinking));
        }
    }

    #[test]
    fn a_discarded_recording_sends_nothing() {
        assert_eq!(S::Listening.on(E::RecordingDiscarded), Ok(S::Ready));
        assert!(S::Ready.on(E::RecordingFinished).is_err());
    }

    #[test]
    fn stale_events_after_a_reset_are_refused() {
        let reset = S::Thinking.on(E::Reset).unwrap();
        assert_eq!(reset, S::Ready);
        assert!(reset.on(E::AnswerReceived { has_audio: true }).is_err(), "a late answer must not start playback");
        assert!(reset.on(E::UploadComplete).is_err());
        assert!(reset.on(E::PlaybackFinished).is_err());
        assert!(reset.on(E::RecordingFinished).is_err());
    }

    #[test]
    fn every_state_can_be_reset() {
        for state in all_states() {
            assert_eq!(state.on(E::Reset), Ok(S::Ready), "{state:?}");
        }
    }

    #[test]
    fn ready_ignores_failures_it_did_not_cause() {
        assert!(S::Ready.on(E::Failed("late".into())).is_err());
    }

    #[test]
    fn each_state_has_its_own_name_status_and_button() {
        let states = all_states();
        let names: std::collections::HashSet<_> = states.iter().map(VoiceState::name).collect();
        assert_eq!(names.len(), states.len());
        let texts: std::collections::HashSet<_> = states.iter().map(VoiceState::status_text).collect();
        assert_eq!(texts.len(), states.len());
        assert_eq!(S::Listening.mic_look(), MicLook::Recording);
        assert_eq!(S::Thinking.mic_look(), MicLook::Busy);
        assert_eq!(S::Speaking.mic_label(), "Interrupt and talk");
        assert_eq!(S::Error("x".into()).mic_look(), MicLook::Idle);
    }
}
