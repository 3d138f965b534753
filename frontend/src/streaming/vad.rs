//! Hands-free turn-taking: decides from the microphone's loudness when the user starts talking and when they
//! have finished, frame by frame. Pure Rust (the frames are plain samples), so every rule is unit-tested
//! natively; the browser only feeds it what the AudioWorklet captured.
//!
//! - Speech starts after [`VadConfig::min_speech_ms`] of loud frames, so a cough, a click or a door does not
//!   open a turn. Short dips between syllables do not reset that count; a longer pause does.
//! - The turn begins with [`VadConfig::pre_roll_ms`] of audio from before the first loud frame, so the soft
//!   start of the first word is not clipped.
//! - The turn ends after [`VadConfig::silence_ms`] of quiet (the user's setting), or at
//!   [`VadConfig::max_turn_ms`] so a noisy room cannot keep a turn open forever.
//! - "Loud" is relative to the room: the noise floor is measured in the first [`CALIBRATION_MS`] and then follows
//!   the room (quickly down, slowly up, even slower during a turn, so a long word is not taken for the room but
//!   a fan switched on mid-turn still lets the turn end); a fixed minimum keeps a silent room's floor from making
//!   every breath speech.

use std::collections::VecDeque;

use crate::audio::level::rms_dbfs;

/// The range the silence setting offers: shorter cuts people off mid-thought, longer feels sluggish.
pub const SILENCE_MS_RANGE: std::ops::RangeInclusive<u32> = 400..=2000;
pub const DEFAULT_SILENCE_MS: u32 = 800;

#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Quiet this long ends the turn.
    pub silence_ms: u32,
    /// Loud this long (in total, within one burst) starts a turn; shorter noises are ignored.
    pub min_speech_ms: u32,
    /// A quiet gap longer than this inside a burst that has not yet become speech starts the count again.
    pub max_gap_ms: u32,
    /// Audio kept from before speech started.
    pub pre_roll_ms: u32,
    /// A turn is ended here even if the room never goes quiet.
    pub max_turn_ms: u32,
    /// Never count anything quieter than this as speech, however quiet the room (dBFS).
    pub min_speech_dbfs: f32,
    /// Speech must be this much louder than the room's noise floor (dB).
    pub margin_db: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            silence_ms: DEFAULT_SILENCE_MS,
            min_speech_ms: 250,
            max_gap_ms: 150,
            pre_roll_ms: 300,
            max_turn_ms: 60_000,
            // A laptop microphone's room noise sits around -60..-50 dBFS; speech at arm's length -35..-15.
            min_speech_dbfs: -42.0,
            margin_db: 12.0,
        }
    }
}

impl VadConfig {
    /// The default detector with the user's silence setting, kept inside the offered range.
    pub fn with_silence_ms(silence_ms: u32) -> Self {
        Self { silence_ms: silence_ms.clamp(*SILENCE_MS_RANGE.start(), *SILENCE_MS_RANGE.end()), ..Self::default() }
    }
}

/// What a frame means for the turn.
#[derive(Debug, Clone, PartialEq)]
pub enum VadStep {
    /// Nothing to do: no speech yet (or a noise still too short to count).
    Waiting,
    /// Speech began: start a turn and send these frames first (the pre-roll and the speech so far, in order).
    Started(Vec<Vec<i16>>),
    /// The turn goes on: send this frame.
    Continue(Vec<i16>),
    /// The user stopped talking (or the turn hit its length limit): send this last frame, then end the turn.
    Ended(Vec<i16>),
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Keeping the last frames for the pre-roll; `burst` holds a loud stretch that may yet become speech.
    Waiting {
        burst: Option<Burst>,
    },
    InSpeech {
        quiet_ms: u32,
        speech_ms: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Burst {
    frames: Vec<Vec<i16>>,
    loud_ms: u32,
    quiet_ms: u32,
}

/// The endpointer: feed it every captured frame (16 kHz mono samples) with [`Vad::push`].
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    phase: Phase,
    pre_roll: VecDeque<Vec<i16>>,
    pre_roll_ms: u32,
    noise_floor_dbfs: f32,
    /// Still measuring the room: how long so far, and the quietest frame heard.
    calibration: Option<(u32, f32)>,
}

/// Floor estimate for digital silence (nothing to measure yet).
const INITIAL_FLOOR_DBFS: f32 = -60.0;
/// How long the detector only listens to the room when it starts: no turn can open meanwhile.
pub const CALIBRATION_MS: u32 = 400;
/// How fast the floor follows a louder room (per frame) while waiting: slow, so a word does not become "the room".
const FLOOR_RISE: f32 = 0.02;
/// The same during a turn: slower still, since most loud frames are then the user's speech.
const FLOOR_RISE_IN_SPEECH: f32 = 0.005;
/// How fast it follows a quieter room: quick, so the bar drops as soon as the noise stops.
const FLOOR_FALL: f32 = 0.3;

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            phase: Phase::Waiting { burst: None },
            pre_roll: VecDeque::new(),
            pre_roll_ms: 0,
            noise_floor_dbfs: INITIAL_FLOOR_DBFS,
            calibration: Some((0, f32::INFINITY)),
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Whether a turn is open (between `Started` and `Ended`).
    pub fn in_speech(&self) -> bool {
        matches!(self.phase, Phase::InSpeech { .. })
    }

    /// A new silence setting, for the next turn (one being heard keeps the count it started with).
    pub fn set_silence_ms(&mut self, silence_ms: u32) {
        if !self.in_speech() {
            self.config.silence_ms = silence_ms;
        }
    }

    /// Forgets the current burst or turn (e.g. while the assistant is thinking) but keeps the room's noise floor.
    pub fn reset(&mut self) {
        self.phase = Phase::Waiting { burst: None };
        self.pre_roll.clear();
        self.pre_roll_ms = 0;
    }

    /// The level above which a frame counts as speech right now (dBFS).
    pub fn threshold_dbfs(&self) -> f32 {
        (self.noise_floor_dbfs + self.config.margin_db).max(self.config.min_speech_dbfs)
    }

    /// One frame of 16 kHz mono samples.
    pub fn push(&mut self, frame: Vec<i16>) -> VadStep {
        let frame_ms = frame_ms(&frame);
        let level = rms_dbfs(frame.iter().map(|&sample| f32::from(sample) / 32768.0));
        if let Some((heard_ms, quietest)) = self.calibration.as_mut() {
            *heard_ms += frame_ms;
            *quietest = quietest.min(level);
            let (heard_ms, quietest) = (*heard_ms, *quietest);
            if heard_ms >= CALIBRATION_MS {
                self.calibration = None;
                self.noise_floor_dbfs = if quietest.is_finite() { quietest.max(INITIAL_FLOOR_DBFS) } else { INITIAL_FLOOR_DBFS };
            }
            self.keep_for_pre_roll(frame);
            return VadStep::Waiting;
        }
        let loud = level > self.threshold_dbfs();
        self.follow_floor(level, self.in_speech());
        match &mut self.phase {
            Phase::InSpeech { quiet_ms, speech_ms } => {
                *speech_ms += frame_ms;
                *quiet_ms = if loud { 0 } else { *quiet_ms + frame_ms };
                if *quiet_ms >= self.config.silence_ms || *speech_ms >= self.config.max_turn_ms {
                    self.reset();
                    VadStep::Ended(frame)
                } else {
                    VadStep::Continue(frame)
                }
            }
            Phase::Waiting { .. } => self.wait_for_speech(frame, frame_ms, loud),
        }
    }

    fn wait_for_speech(&mut self, frame: Vec<i16>, this_ms: u32, loud: bool) -> VadStep {
        let Phase::Waiting { burst } = std::mem::replace(&mut self.phase, Phase::Waiting { burst: None }) else {
            return VadStep::Waiting;
        };
        let Some(mut burst) = burst else {
            if loud {
                self.phase = Phase::Waiting { burst: Some(Burst { frames: vec![frame], loud_ms: this_ms, quiet_ms: 0 }) };
            } else {
                self.keep_for_pre_roll(frame);
            }
            return VadStep::Waiting;
        };
        if loud {
            burst.loud_ms += this_ms;
            burst.quiet_ms = 0;
        } else {
            burst.quiet_ms += this_ms;
        }
        burst.frames.push(frame);
        if burst.loud_ms >= self.config.min_speech_ms {
            let speech_ms = burst.frames.iter().map(|f| frame_ms(f)).sum();
            let mut frames: Vec<Vec<i16>> = self.pre_roll.drain(..).collect();
            frames.append(&mut burst.frames);
            self.pre_roll_ms = 0;
            self.phase = Phase::InSpeech { quiet_ms: burst.quiet_ms, speech_ms };
            VadStep::Started(frames)
        } else if burst.quiet_ms > self.config.max_gap_ms {
            // A noise, not speech: its frames become ordinary pre-roll.
            for frame in burst.frames {
                self.keep_for_pre_roll(frame);
            }
            VadStep::Waiting
        } else {
            self.phase = Phase::Waiting { burst: Some(burst) };
            VadStep::Waiting
        }
    }

    fn keep_for_pre_roll(&mut self, frame: Vec<i16>) {
        self.pre_roll_ms += frame_ms(&frame);
        self.pre_roll.push_back(frame);
        while self.pre_roll_ms > self.config.pre_roll_ms {
            let Some(oldest) = self.pre_roll.pop_front() else { break };
            let oldest_ms = frame_ms(&oldest);
            if self.pre_roll_ms - oldest_ms < self.config.pre_roll_ms {
                // Dropping it would leave less than the pre-roll asked for: keep it.
                self.pre_roll.push_front(oldest);
                break;
            }
            self.pre_roll_ms -= oldest_ms;
        }
    }

    fn follow_floor(&mut self, level: f32, in_speech: bool) {
        // Digital silence (a muted or fake device) says nothing about the room; the floor stays where it is.
        if !level.is_finite() {
            return;
        }
        let rate = match (level > self.noise_floor_dbfs, in_speech) {
            (true, false) => FLOOR_RISE,
            (true, true) => FLOOR_RISE_IN_SPEECH,
            (false, _) => FLOOR_FALL,
        };
        self.noise_floor_dbfs += (level - self.noise_floor_dbfs) * rate;
    }
}

/// The duration of a 16 kHz frame in whole milliseconds.
fn frame_ms(frame: &[i16]) -> u32 {
    u32::try_from(frame.len() / 16).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 320; // 20 ms

    fn loud() -> Vec<i16> {
        // A 500 Hz tone at about -12 dBFS: clearly speech-loud.
        (0..FRAME).map(|i| ((i as f32 * std::f32::consts::TAU * 500.0 / 16_000.0).sin() * 8000.0) as i16).collect()
    }

    fn quiet() -> Vec<i16> {
        vec![0; FRAME]
    }

    fn hiss() -> Vec<i16> {
        // About -55 dBFS of alternating noise: a quiet room.
        (0..FRAME).map(|i| if i % 2 == 0 { 58 } else { -58 }).collect()
    }

    /// A detector that has measured a silent room, ready to hear speech.
    fn calibrated(config: VadConfig) -> Vad {
        let mut vad = Vad::new(config);
        for _ in 0..CALIBRATION_MS / 20 {
            vad.push(quiet());
        }
        vad.reset();
        vad
    }

    /// Feeds `count` copies of `frame`, returning every step that was not `Waiting`/`Continue`.
    fn feed(vad: &mut Vad, frame: fn() -> Vec<i16>, count: usize) -> Vec<VadStep> {
        (0..count).map(|_| vad.push(frame())).filter(|step| matches!(step, VadStep::Started(_) | VadStep::Ended(_))).collect()
    }

    #[test]
    fn speech_starts_after_the_minimum_duration_and_brings_the_pre_roll() {
        let mut vad = calibrated(VadConfig::default());
        assert!(feed(&mut vad, quiet, 50).is_empty());
        let steps: Vec<VadStep> = (0..13).map(|_| vad.push(loud())).collect();
        // 250 ms of speech is 12.5 frames: the 13th loud frame starts the turn, none before it.
        assert!(steps[..12].iter().all(|step| *step == VadStep::Waiting), "{steps:?}");
        let VadStep::Started(frames) = &steps[12] else { panic!("{:?}", steps[12]) };
        let quiet_frames = frames.iter().take_while(|frame| frame.iter().all(|&s| s == 0)).count();
        assert_eq!(quiet_frames, 15, "300 ms of pre-roll");
        assert_eq!(frames.len(), 15 + 13, "then every loud frame so far");
        assert!(vad.in_speech());
    }

    #[test]
    fn the_turn_ends_after_the_configured_silence() {
        let mut vad = calibrated(VadConfig::with_silence_ms(800));
        feed(&mut vad, loud, 20);
        let steps: Vec<VadStep> = (0..40).map(|_| vad.push(quiet())).collect();
        let ended = steps.iter().position(|step| matches!(step, VadStep::Ended(_)));
        assert_eq!(ended, Some(39), "the 40th quiet frame makes 800 ms");
        assert!(!vad.in_speech());

        let mut quick = calibrated(VadConfig::with_silence_ms(400));
        feed(&mut quick, loud, 20);
        let steps: Vec<VadStep> = (0..20).map(|_| quick.push(quiet())).collect();
        assert!(matches!(steps[19], VadStep::Ended(_)), "400 ms setting");
    }

    #[test]
    fn pauses_shorter_than_the_silence_keep_the_turn_open() {
        let mut vad = calibrated(VadConfig::default());
        feed(&mut vad, loud, 20);
        assert!(feed(&mut vad, quiet, 30).is_empty(), "600 ms pause between phrases");
        assert!(feed(&mut vad, loud, 10).is_empty());
        assert!(vad.in_speech());
    }

    #[test]
    fn a_cough_or_click_is_not_a_turn() {
        let mut vad = calibrated(VadConfig::default());
        for _ in 0..5 {
            assert!(feed(&mut vad, loud, 10).is_empty(), "200 ms burst");
            assert!(feed(&mut vad, quiet, 20).is_empty());
        }
        assert!(!vad.in_speech());
    }

    #[test]
    fn short_dips_between_syllables_still_add_up_to_speech() {
        let mut vad = calibrated(VadConfig::default());
        let mut started = false;
        for _ in 0..4 {
            started |= !feed(&mut vad, loud, 4).is_empty();
            started |= !feed(&mut vad, quiet, 3).is_empty(); // 60 ms dips
        }
        assert!(started, "4 x 80 ms of voice with short gaps is speech");
    }

    /// A constant fan at about -38 dBFS: louder than the speech minimum.
    fn fan() -> Vec<i16> {
        (0..FRAME).map(|i| if i % 2 == 0 { 410 } else { -410 }).collect()
    }

    #[test]
    fn nothing_opens_a_turn_while_the_room_is_measured() {
        let mut vad = Vad::new(VadConfig::default());
        let calibration_frames = (CALIBRATION_MS / 20) as usize;
        let steps: Vec<VadStep> = (0..calibration_frames).map(|_| vad.push(loud())).collect();
        assert!(steps.iter().all(|step| *step == VadStep::Waiting));
    }

    #[test]
    fn a_noisy_room_raises_the_bar() {
        let mut vad = Vad::new(VadConfig::default());
        let quiet_room = vad.threshold_dbfs();
        assert_eq!(quiet_room, VadConfig::default().min_speech_dbfs);
        assert!(feed(&mut vad, fan, 500).is_empty(), "a fan running from the start never opens a turn");
        assert!(vad.threshold_dbfs() > quiet_room + 5.0, "{}", vad.threshold_dbfs());
        assert!(!feed(&mut vad, loud, 20).is_empty(), "speech over the fan still does");
    }

    #[test]
    fn a_fan_switched_on_later_cannot_hold_a_turn_open() {
        let mut vad = Vad::new(VadConfig::default());
        feed(&mut vad, hiss, 50);
        let steps = feed(&mut vad, fan, 400);
        assert!(matches!(steps.first(), Some(VadStep::Started(_))), "a sudden noise looks like speech at first");
        assert!(matches!(steps.get(1), Some(VadStep::Ended(_))), "but the floor catches up and the turn ends: {steps:?}");
        assert_eq!(steps.len(), 2, "and it does not start again");
    }

    #[test]
    fn room_hiss_is_not_speech() {
        let mut vad = Vad::new(VadConfig::default());
        assert!(feed(&mut vad, hiss, 300).is_empty());
    }

    #[test]
    fn a_turn_that_never_goes_quiet_is_cut_at_the_limit() {
        let mut vad = calibrated(VadConfig { max_turn_ms: 2000, ..VadConfig::default() });
        let steps = feed(&mut vad, loud, 120);
        assert!(matches!(steps[0], VadStep::Started(_)));
        assert!(steps.iter().any(|step| matches!(step, VadStep::Ended(_))));
    }

    #[test]
    fn reset_drops_the_turn_and_the_pre_roll() {
        let mut vad = calibrated(VadConfig::default());
        feed(&mut vad, loud, 20);
        vad.reset();
        assert!(!vad.in_speech());
        let steps: Vec<VadStep> = (0..13).map(|_| vad.push(loud())).collect();
        let VadStep::Started(frames) = &steps[12] else { panic!() };
        assert_eq!(frames.len(), 13, "no stale pre-roll after a reset");
    }

    #[test]
    fn the_silence_setting_is_kept_in_range() {
        assert_eq!(VadConfig::with_silence_ms(50).silence_ms, 400);
        assert_eq!(VadConfig::with_silence_ms(10_000).silence_ms, 2000);
        assert_eq!(VadConfig::with_silence_ms(1200).silence_ms, 1200);
    }
}
