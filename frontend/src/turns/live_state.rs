//! Where the live connection is, as explicit states, like the socket's `Phase` on the server: the microphone's
//! side ([`Mic`]: closed, held for push-to-talk, or open hands-free and either waiting for speech or streaming
//! it) and the answer's side ([`Answer`]: none, arriving, or playing out after `done`), plus an answer the user
//! cut short whose remains the server has yet to confirm. The sides are separate because they overlap:
//! hands-free keeps the microphone open while an answer plays, which is how the user can talk over it.
//!
//! [`VoiceState`](crate::voice_state::VoiceState) says what the user sees; this says what the socket is
//! carrying and which browser objects belong to it. Dropping a state drops its capture, so a transition that
//! leaves the microphone behind also releases it. Generic over the capture and the player, so every transition
//! is unit-tested natively with stand-ins; `super::live` holds it with the real ones and does what it says.

use parlance_shared::{KnowledgeSource, StageTimings};

use crate::streaming::frames::FrameBatcher;
use crate::streaming::vad::{Vad, VadStep};

/// What the state needs of the player of a streamed answer.
pub trait Player {
    /// Silences everything now; the last chunk heard to its end.
    fn stop(&self) -> Option<u32>;
    /// Something was scheduled or is still being decoded.
    fn has_audio(&self) -> bool;
    /// Everything received so far has played.
    fn is_idle(&self) -> bool;
}

/// The microphone, as the live connection uses it.
#[derive(Debug, Default)]
pub enum Mic<C> {
    /// Not streaming (a recording for an upload, if any, is the HTTP path's).
    #[default]
    Closed,
    /// Push-to-talk: every frame goes to the server until the user lets go.
    Held { capture: C, batcher: FrameBatcher },
    /// Hands-free between questions: the detector listens for speech and nothing is sent.
    Waiting { capture: C, vad: Vad },
    /// Hands-free, a question the detector heard begin: its frames go out until a pause ends it.
    Streaming { capture: C, vad: Vad, batcher: FrameBatcher },
}

/// A question the server is answering over the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The turn generation it belongs to: a newer one means the page moved on and its events are stale.
    pub generation: u64,
    /// What the user asked, as far as the page knows (the final transcript replaces a placeholder).
    pub question: String,
}

/// The answer's side of the socket.
#[derive(Debug, Default)]
pub enum Answer<P> {
    #[default]
    None,
    /// Text, transcript and audio arrive for `turn`; the player exists once audio has.
    Arriving { turn: Turn, player: Option<P> },
    /// `done` came and the exchange is shown; the player finishes what had arrived.
    PlayingOut { turn: Turn, exchange: u64, sources: Vec<KnowledgeSource>, timings: StageTimings, player: P },
}

/// An answer the user cut short: kept until the server says how much of it the conversation keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    pub question: String,
    /// The exchange already shown for it, if `done` had come.
    pub exchange: Option<u64>,
    pub sources: Vec<KnowledgeSource>,
    pub timings: Option<StageTimings>,
}

/// What a captured frame is for.
#[derive(Debug, PartialEq)]
pub enum FrameUse {
    /// Nothing: no question is being sent and no detector listens (or this frame is still gathering).
    Nothing,
    /// A message's worth of audio for the server.
    Send(Vec<u8>),
    /// Hands-free: what the detector made of it.
    Detected(VadStep),
}

/// How a streamed answer goes on once `done` came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDone {
    /// No audio came (speech off or failed): the turn is over.
    Silent,
    /// All the audio has played already: the turn is over.
    Played,
    /// Audio is still playing: the turn ends when the player goes idle.
    PlayingOut,
}

/// An answer stopped by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Audio had started; `played_through` is the last chunk heard to its end.
    pub was_playing: bool,
    pub played_through: Option<u32>,
}

/// The live connection's whole state.
#[derive(Debug)]
pub struct LiveState<C, P> {
    pub mic: Mic<C>,
    pub answer: Answer<P>,
    /// Until the server answers the interruption, what it sends still belongs to the cut answer.
    pub cut: Option<Cut>,
}

// By hand: derived, it would ask for a default capture and player, which the starting state has none of.
impl<C, P> Default for LiveState<C, P> {
    fn default() -> Self {
        Self { mic: Mic::Closed, answer: Answer::None, cut: None }
    }
}

impl<C, P: Player> LiveState<C, P> {
    // ---- the microphone ----

    /// Push-to-talk began: `start` went out and the microphone streams.
    pub fn hold(&mut self, capture: C) {
        self.mic = Mic::Held { capture, batcher: FrameBatcher::default() };
    }

    /// Hands-free opened the microphone: the detector decides when questions start and end.
    pub fn open_hands_free(&mut self, capture: C, vad: Vad) {
        self.mic = Mic::Waiting { capture, vad };
    }

    pub fn is_held(&self) -> bool {
        matches!(self.mic, Mic::Held { .. })
    }

    pub fn hands_free_open(&self) -> bool {
        matches!(self.mic, Mic::Waiting { .. } | Mic::Streaming { .. })
    }

    /// A question's audio is going to the server.
    pub fn is_sending(&self) -> bool {
        matches!(self.mic, Mic::Held { .. } | Mic::Streaming { .. })
    }

    pub fn waiting_for_speech(&self) -> bool {
        matches!(self.mic, Mic::Waiting { .. })
    }

    /// A frame from the microphone. `detector_listens`: the user may start a question now (hands-free listens
    /// while waiting and while an answer plays, not while one is being worked on).
    pub fn frame(&mut self, frame: Vec<i16>, detector_listens: bool) -> FrameUse {
        match &mut self.mic {
            Mic::Closed => FrameUse::Nothing,
            Mic::Held { batcher, .. } => batcher.push(&frame).map_or(FrameUse::Nothing, FrameUse::Send),
            Mic::Waiting { vad, .. } | Mic::Streaming { vad, .. } if detector_listens => FrameUse::Detected(vad.push(frame)),
            Mic::Waiting { .. } | Mic::Streaming { .. } => FrameUse::Nothing,
        }
    }

    /// Hands-free: the detector heard a question begin and `start` went out. False if the microphone is not
    /// waiting for one.
    pub fn speech_started(&mut self) -> bool {
        match std::mem::take(&mut self.mic) {
            Mic::Waiting { capture, vad } => {
                self.mic = Mic::Streaming { capture, vad, batcher: FrameBatcher::default() };
                true
            }
            other => {
                self.mic = other;
                false
            }
        }
    }

    /// Audio of the question being sent; a message's worth once enough has gathered.
    pub fn push(&mut self, frame: &[i16]) -> Option<Vec<u8>> {
        match &mut self.mic {
            Mic::Held { batcher, .. } | Mic::Streaming { batcher, .. } => batcher.push(frame),
            Mic::Closed | Mic::Waiting { .. } => None,
        }
    }

    /// The question is over (the user let go, a pause, or a tap): the rest of its audio, before `end_turn`.
    /// Push-to-talk releases the microphone; hands-free keeps it, waiting for the next question.
    pub fn end_question(&mut self) -> Option<Vec<u8>> {
        match std::mem::take(&mut self.mic) {
            Mic::Held { capture, mut batcher } => {
                drop(capture);
                batcher.flush()
            }
            Mic::Streaming { capture, vad, mut batcher } => {
                self.mic = Mic::Waiting { capture, vad };
                batcher.flush()
            }
            other => {
                self.mic = other;
                None
            }
        }
    }

    /// Hands-free: the server heard the question end (`turn_ended`). What was not sent yet is silence it no
    /// longer wants; the detector starts over, waiting for the next question. False if no question was being
    /// streamed (the app ended it first).
    pub fn question_ended_by_server(&mut self) -> bool {
        match std::mem::take(&mut self.mic) {
            Mic::Streaming { capture, mut vad, .. } => {
                vad.reset();
                self.mic = Mic::Waiting { capture, vad };
                true
            }
            other => {
                self.mic = other;
                false
            }
        }
    }

    /// Hands-free: the detector waiting for the next question uses a new silence setting.
    pub fn set_detector_silence(&mut self, silence_ms: u32) {
        if let Mic::Waiting { vad, .. } = &mut self.mic {
            vad.set_silence_ms(silence_ms);
        }
    }

    /// The server refused the question: nothing more is sent. Returns whether that released the microphone
    /// (push-to-talk; hands-free keeps it open).
    pub fn stop_sending(&mut self) -> bool {
        match std::mem::take(&mut self.mic) {
            Mic::Held { .. } => true,
            Mic::Streaming { capture, vad, .. } => {
                self.mic = Mic::Waiting { capture, vad };
                false
            }
            other => {
                self.mic = other;
                false
            }
        }
    }

    /// Hands-free after a turn: listen for the next question with the microphone that is still open.
    /// False if it is not open (it has to be opened again).
    pub fn listen_again(&mut self) -> bool {
        match std::mem::take(&mut self.mic) {
            Mic::Waiting { capture, mut vad } | Mic::Streaming { capture, mut vad, .. } => {
                vad.reset();
                self.mic = Mic::Waiting { capture, vad };
                true
            }
            other => {
                self.mic = other;
                false
            }
        }
    }

    /// Releases the microphone. Returns whether a question was being sent (the server should drop it).
    pub fn release_mic(&mut self) -> bool {
        let was_sending = self.is_sending();
        self.mic = Mic::Closed;
        was_sending
    }

    // ---- the answer ----

    /// A question went to the server; its answer is awaited. Any earlier answer is forgotten.
    pub fn begin(&mut self, generation: u64, question: String) {
        self.answer = Answer::Arriving { turn: Turn { generation, question }, player: None };
    }

    /// The turn the server's events are for, if any.
    pub fn turn(&self) -> Option<&Turn> {
        match &self.answer {
            Answer::None => None,
            Answer::Arriving { turn, .. } | Answer::PlayingOut { turn, .. } => Some(turn),
        }
    }

    /// Whether an answer is on its way or playing for the turn of `generation`.
    pub fn answering(&self, generation: u64) -> bool {
        self.turn().is_some_and(|turn| turn.generation == generation)
    }

    /// The server's final transcript names the question.
    pub fn set_question(&mut self, text: String) {
        if let Answer::Arriving { turn, .. } | Answer::PlayingOut { turn, .. } = &mut self.answer {
            turn.question = text;
        }
    }

    /// A chunk of audio arrived: the player to give it to (made with `make` for the first chunk) and whether
    /// it is the first, when the answer starts being spoken.
    pub fn chunk_player(&mut self, make: impl FnOnce() -> P) -> Option<(P, bool)>
    where
        P: Clone,
    {
        match &mut self.answer {
            Answer::None => None,
            Answer::Arriving { player: Some(player), .. } | Answer::PlayingOut { player, .. } => Some((player.clone(), false)),
            Answer::Arriving { player, .. } => Some((player.insert(make()).clone(), true)),
        }
    }

    /// `done` came and its exchange is shown as `exchange`.
    pub fn done(&mut self, exchange: u64, sources: Vec<KnowledgeSource>, timings: StageTimings) -> AfterDone {
        match std::mem::take(&mut self.answer) {
            Answer::Arriving { turn, player: Some(player) } if player.has_audio() => {
                if player.is_idle() {
                    return AfterDone::Played;
                }
                self.answer = Answer::PlayingOut { turn, exchange, sources, timings, player };
                AfterDone::PlayingOut
            }
            Answer::Arriving { .. } => AfterDone::Silent,
            // A second `done` for one turn: nothing more to show.
            other @ Answer::PlayingOut { .. } => {
                self.answer = other;
                AfterDone::PlayingOut
            }
            Answer::None => AfterDone::Silent,
        }
    }

    /// The player went idle: if `done` had come, the answer is over. Returns whether it was.
    pub fn played_out(&mut self) -> bool {
        match std::mem::take(&mut self.answer) {
            Answer::PlayingOut { .. } => true,
            other => {
                self.answer = other;
                false
            }
        }
    }

    /// The user cut the answer short (stop, a new question, talking over it). `shown_question` is the question
    /// the page shows while the answer has no exchange yet. `None` if there was no answer to cut.
    pub fn cut(&mut self, shown_question: Option<String>) -> Option<Stopped> {
        let (cut, player) = match std::mem::take(&mut self.answer) {
            Answer::None => return None,
            Answer::Arriving { turn, player } => {
                (Cut { question: shown_question.unwrap_or(turn.question), exchange: None, sources: Vec::new(), timings: None }, player)
            }
            Answer::PlayingOut { turn, exchange, sources, timings, player } => {
                (Cut { question: turn.question, exchange: Some(exchange), sources, timings: Some(timings) }, Some(player))
            }
        };
        self.cut = Some(cut);
        let played_through = player.as_ref().and_then(Player::stop);
        Some(Stopped { was_playing: player.is_some(), played_through })
    }

    pub fn awaiting_cut(&self) -> bool {
        self.cut.is_some()
    }

    /// The server said what it kept of the cut answer.
    pub fn take_cut(&mut self) -> Option<Cut> {
        self.cut.take()
    }

    /// The server failed the turn: its question, to show the failure under.
    pub fn fail_answer(&mut self) -> Option<String> {
        match std::mem::take(&mut self.answer) {
            Answer::None => None,
            Answer::Arriving { turn, .. } | Answer::PlayingOut { turn, .. } => Some(turn.question),
        }
    }

    /// "New conversation", or the socket closed: everything is dropped, the microphone released and the
    /// answer silenced. Returns whether a turn was in progress.
    pub fn reset(&mut self) -> bool {
        let busy = !matches!(self.answer, Answer::None) || self.is_sending();
        if let Answer::Arriving { player: Some(player), .. } | Answer::PlayingOut { player, .. } = &self.answer {
            player.stop();
        }
        *self = Self { mic: Mic::Closed, answer: Answer::None, cut: None };
        busy
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::streaming::frames::SAMPLES_PER_MESSAGE;
    use crate::streaming::vad::VadConfig;

    /// Stands in for the microphone: says whether it was released (dropped).
    struct FakeCapture(Rc<Cell<bool>>);

    impl Drop for FakeCapture {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    fn capture() -> (FakeCapture, Rc<Cell<bool>>) {
        let released = Rc::new(Cell::new(false));
        (FakeCapture(Rc::clone(&released)), released)
    }

    #[derive(Clone, Default)]
    struct FakePlayer {
        audio: bool,
        idle: bool,
        stopped: Rc<Cell<bool>>,
    }

    impl Player for FakePlayer {
        fn stop(&self) -> Option<u32> {
            self.stopped.set(true);
            Some(2)
        }
        fn has_audio(&self) -> bool {
            self.audio
        }
        fn is_idle(&self) -> bool {
            self.idle
        }
    }

    type State = LiveState<FakeCapture, FakePlayer>;

    const TWENTY_MS: usize = SAMPLES_PER_MESSAGE / 5;

    fn vad() -> Vad {
        Vad::new(VadConfig::default())
    }

    fn timings() -> StageTimings {
        StageTimings { llm_ms: 5, ..StageTimings::default() }
    }

    fn source() -> KnowledgeSource {
        KnowledgeSource { id: "1".into(), title: "Paris".into(), snippet: "capital".into(), score: 1.0 }
    }

    fn playing(audio: bool, idle: bool) -> FakePlayer {
        FakePlayer { audio, idle, ..FakePlayer::default() }
    }

    #[test]
    fn push_to_talk_sends_every_frame_and_letting_go_releases_the_microphone() {
        let mut state = State::default();
        let (capture, released) = capture();
        state.hold(capture);
        assert!(state.is_held() && state.is_sending() && !state.hands_free_open());
        let uses: Vec<FrameUse> = (0..6).map(|_| state.frame(vec![1; TWENTY_MS], false)).collect();
        assert!(matches!(&uses[4], FrameUse::Send(bytes) if bytes.len() == SAMPLES_PER_MESSAGE * 2), "100 ms make a message");
        assert_eq!(uses.iter().filter(|used| **used == FrameUse::Nothing).count(), 5);
        assert_eq!(state.end_question().map(|rest| rest.len()), Some(TWENTY_MS * 2), "the rest goes before end_turn");
        assert!(released.get(), "the microphone is released");
        assert!(matches!(state.mic, Mic::Closed));
        assert_eq!(state.frame(vec![1; TWENTY_MS], false), FrameUse::Nothing, "a late frame goes nowhere");
    }

    #[test]
    fn hands_free_waits_for_speech_streams_the_question_and_keeps_the_microphone() {
        let mut state = State::default();
        let (capture, released) = capture();
        state.open_hands_free(capture, vad());
        assert!(state.hands_free_open() && state.waiting_for_speech() && !state.is_sending());
        assert_eq!(state.frame(vec![0; TWENTY_MS], true), FrameUse::Detected(VadStep::Waiting));
        assert_eq!(state.push(&[1; TWENTY_MS]), None, "nothing is sent before speech");

        assert!(state.speech_started());
        assert!(state.is_sending() && !state.waiting_for_speech());
        assert!(!state.speech_started(), "a question is already being sent");
        assert_eq!(state.push(&[1; TWENTY_MS]), None);
        assert_eq!(state.end_question().map(|rest| rest.len()), Some(TWENTY_MS * 2));
        assert!(state.waiting_for_speech(), "back to waiting for the next question");
        assert!(!released.get(), "the microphone stays open");
    }

    #[test]
    fn a_question_the_server_ended_sends_nothing_more_and_the_detector_starts_over() {
        let mut state = State::default();
        let (capture, released) = capture();
        let loud = || vec![8_000; TWENTY_MS];
        state.open_hands_free(capture, vad());
        assert!(!state.question_ended_by_server(), "no question was being sent");
        // The room is measured first, then speech opens a turn.
        let steps: Vec<FrameUse> = (0..40).map(|n| state.frame(if n < 25 { vec![0; TWENTY_MS] } else { loud() }, true)).collect();
        assert!(steps.iter().any(|step| matches!(step, FrameUse::Detected(VadStep::Started(_)))), "speech heard");
        assert!(state.speech_started());
        assert_eq!(state.push(&[1; TWENTY_MS]), None);

        assert!(state.question_ended_by_server());
        assert!(state.waiting_for_speech() && !state.is_sending() && !released.get());
        assert_eq!(state.push(&[1; TWENTY_MS]), None, "what was not sent yet stays here");
        // Silence now is not the end of a turn the detector still thought open: it waits for the next question.
        for _ in 0..200 {
            assert_eq!(state.frame(vec![0; TWENTY_MS], true), FrameUse::Detected(VadStep::Waiting));
        }
        assert!(!state.question_ended_by_server(), "only once");
    }

    #[test]
    fn a_new_silence_setting_reaches_the_waiting_detector() {
        let mut state = State::default();
        state.open_hands_free(capture().0, vad());
        state.set_detector_silence(2_600);
        let Mic::Waiting { vad, .. } = &state.mic else { panic!("waiting") };
        assert_eq!(vad.config().silence_ms, 2_600);
    }

    #[test]
    fn the_detector_only_hears_frames_while_the_user_may_talk() {
        let mut state = State::default();
        state.open_hands_free(capture().0, vad());
        assert_eq!(state.frame(vec![0; TWENTY_MS], false), FrameUse::Nothing, "while the answer is worked on");
        assert!(matches!(state.frame(vec![0; TWENTY_MS], true), FrameUse::Detected(_)));
    }

    #[test]
    fn listening_again_needs_an_open_microphone() {
        let mut state = State::default();
        assert!(!state.listen_again(), "closed: it has to be opened");
        state.open_hands_free(capture().0, vad());
        state.speech_started();
        assert!(state.listen_again());
        assert!(state.waiting_for_speech());
    }

    #[test]
    fn a_refused_question_releases_a_held_microphone_but_not_a_hands_free_one() {
        let mut state = State::default();
        let (held, held_released) = capture();
        state.hold(held);
        assert!(state.stop_sending());
        assert!(held_released.get() && !state.is_sending());

        let (open, open_released) = capture();
        state.open_hands_free(open, vad());
        state.speech_started();
        assert!(!state.stop_sending());
        assert!(state.waiting_for_speech() && !open_released.get());
        assert!(!state.stop_sending(), "nothing to stop");
    }

    #[test]
    fn releasing_the_microphone_says_whether_a_question_was_on_its_way() {
        let mut state = State::default();
        assert!(!state.release_mic());
        let (open, released) = capture();
        state.open_hands_free(open, vad());
        assert!(!state.release_mic(), "waiting for speech sends nothing");
        assert!(released.get());
        state.hold(capture().0);
        assert!(state.release_mic());
        assert!(matches!(state.mic, Mic::Closed));
    }

    #[test]
    fn an_answer_with_audio_plays_out_after_done_and_ends_when_the_player_is_idle() {
        let mut state = State::default();
        state.begin(3, "🎤".into());
        assert!(state.answering(3) && !state.answering(4), "events of another generation are stale");
        state.set_question("What is the capital of France?".into());
        let player = playing(true, false);
        let (_, first) = state.chunk_player(|| player.clone()).unwrap();
        assert!(first, "the first chunk starts the spoken answer");
        let (_, first) = state.chunk_player(|| unreachable!("one player per answer")).unwrap();
        assert!(!first);

        assert_eq!(state.done(7, vec![source()], timings()), AfterDone::PlayingOut);
        assert!(state.answering(3));
        assert!(matches!(&state.answer, Answer::PlayingOut { exchange: 7, turn, .. } if turn.question == "What is the capital of France?"));
        assert!(state.played_out());
        assert!(matches!(state.answer, Answer::None));
        assert!(!state.played_out(), "only once");
    }

    #[test]
    fn the_player_going_idle_before_done_does_not_end_the_answer() {
        let mut state = State::default();
        state.begin(1, "q".into());
        state.chunk_player(|| playing(true, true));
        assert!(!state.played_out(), "more may come");
        assert!(state.answering(1));
        assert_eq!(state.done(0, vec![], timings()), AfterDone::Played, "all of it played already");
        assert!(matches!(state.answer, Answer::None));
    }

    #[test]
    fn an_answer_without_audio_is_over_at_done() {
        let mut state = State::default();
        state.begin(1, "q".into());
        assert_eq!(state.done(0, vec![], timings()), AfterDone::Silent);
        assert!(matches!(state.answer, Answer::None));

        state.begin(2, "q".into());
        state.chunk_player(|| playing(false, true));
        assert_eq!(state.done(1, vec![], timings()), AfterDone::Silent, "no chunk could be decoded");
        assert_eq!(state.done(1, vec![], timings()), AfterDone::Silent, "a stray done");
        assert!(state.chunk_player(|| unreachable!("no answer, no player")).is_none());
    }

    #[test]
    fn cutting_an_arriving_answer_keeps_the_question_shown_until_the_server_confirms() {
        let mut state = State::default();
        assert_eq!(state.cut(None), None, "nothing to cut");
        state.begin(1, "🎤".into());
        let player = playing(true, false);
        state.chunk_player(|| player.clone());
        assert_eq!(state.cut(Some("shown".into())), Some(Stopped { was_playing: true, played_through: Some(2) }));
        assert!(player.stopped.get());
        assert!(state.awaiting_cut() && state.turn().is_none());

        // The next question may start before the server answered the interruption.
        state.begin(2, "next".into());
        let cut = state.take_cut().unwrap();
        assert_eq!(cut, Cut { question: "shown".into(), exchange: None, sources: vec![], timings: None });
        assert!(!state.awaiting_cut() && state.answering(2));
    }

    #[test]
    fn cutting_an_answer_playing_out_keeps_its_exchange_sources_and_timings() {
        let mut state = State::default();
        state.begin(1, "q".into());
        state.chunk_player(|| playing(true, false));
        state.done(9, vec![source()], timings());
        assert_eq!(state.cut(Some("ignored".into())).map(|stopped| stopped.was_playing), Some(true));
        assert_eq!(
            state.take_cut(),
            Some(Cut { question: "q".into(), exchange: Some(9), sources: vec![source()], timings: Some(timings()) })
        );
        assert_eq!(state.take_cut(), None);
    }

    #[test]
    fn cutting_before_any_audio_stops_nothing() {
        let mut state = State::default();
        state.begin(1, "q".into());
        assert_eq!(state.cut(None), Some(Stopped { was_playing: false, played_through: None }));
        assert_eq!(state.take_cut().map(|cut| cut.question), Some("q".into()));
    }

    #[test]
    fn a_failed_answer_gives_back_its_question() {
        let mut state = State::default();
        assert_eq!(state.fail_answer(), None);
        state.begin(1, "q".into());
        assert_eq!(state.fail_answer(), Some("q".into()));
        assert!(state.turn().is_none());
    }

    #[test]
    fn reset_drops_everything_and_says_whether_a_turn_was_on() {
        let mut state = State::default();
        assert!(!state.reset());

        let (open, released) = capture();
        state.open_hands_free(open, vad());
        state.begin(1, "q".into());
        let player = playing(true, false);
        state.chunk_player(|| player.clone());
        assert!(state.reset());
        assert!(released.get() && player.stopped.get());
        assert!(state.turn().is_none() && !state.hands_free_open());

        state.hold(capture().0);
        state.cut = Some(Cut { question: "old".into(), exchange: None, sources: vec![], timings: None });
        assert!(state.reset(), "a question was being sent");
        assert!(!state.awaiting_cut());
    }
}
