//! Listening while the answer plays (`TurnDetection::barge_in`). Without headphones the microphone hears the
//! answer too, and people say "uh-huh" while they listen: stopping at every sound, as a loudness detector does,
//! makes the assistant interrupt itself. Here the voice activity model finds speech in the stream; each stretch
//! is transcribed at its first pause (or once it has gone on too long to be an acknowledgement), and its words
//! decide (see [`ignored`]): the answer's own words coming back, an acknowledgement, or too little to tell are
//! ignored; words people cut in with, or several the answer does not explain, are the user taking the turn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parlance_shared::{AudioEncoding, IgnoredSpeech};
use tokio_util::task::AbortOnDropHandle;

use super::pauses::{SAMPLES_PER_MS, VOICE_PAUSE_SAMPLES};
use super::recording::Recording;
use crate::pipeline::Pipeline;
use crate::stt::SttError;
use crate::vad::{VoiceActivity, VoiceEvent};

/// Audio kept from before the speech began, so its first word reaches speech-to-text whole.
const PRE_ROLL_SAMPLES: usize = 300 * SAMPLES_PER_MS;
/// Speech going on this long without a pause is judged before it ends, and again each time it has gone on
/// this much longer: acknowledgements are shorter, and a user cutting in over the answer's voice should not have
/// to pause first.
const LONG_SPEECH_SAMPLES: usize = 600 * SAMPLES_PER_MS;
/// The most of a stretch of speech transcribed at once: a user cutting in over the answer's voice is heard
/// whole, not in pieces that each look like a misheard echo.
const JUDGED_SAMPLES: usize = 3_000 * SAMPLES_PER_MS;
/// How far before the moment speech was last judged not the user's their turn may begin.
const OVERLAP_SAMPLES: usize = 500 * SAMPLES_PER_MS;
/// Words people say to show they are listening, not to take the turn.
const BACKCHANNELS: &[&str] = &[
    "uh",
    "huh",
    "uhuh",
    "mm",
    "mmm",
    "hm",
    "hmm",
    "mhm",
    "mmhmm",
    "um",
    "ah",
    "aha",
    "oh",
    "ooh",
    "okay",
    "ok",
    "right",
    "yeah",
    "yes",
    "yep",
    "yup",
    "sure",
    "alright",
    "i",
    "see",
    "got",
    "it",
    "cool",
    "great",
    "nice",
    "wow",
    "thanks",
    "thank",
    "you",
    "really",
    "good",
    "fine",
    "interesting",
    "indeed",
];

/// Words that say nothing on their own about who is speaking.
const COMMON: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "of", "to", "in", "into", "on", "at", "by", "for", "from", "with", "as",
    "and", "or", "but", "if", "so", "then", "than", "up", "out", "just", "all", "it", "it's", "its", "that", "that's", "this", "there",
    "there's", "i", "i'm", "you", "you're", "your", "we", "we're", "our", "they", "them", "their", "he", "she", "his", "her", "my", "me",
    "do", "does", "did", "has", "have", "had", "can", "will", "would", "could", "should", "not",
];

/// Words with which people cut in: a stretch holding one is the user's, however short.
const TAKING_THE_TURN: &[&str] = &[
    "stop", "wait", "hold", "no", "hey", "pause", "cancel", "enough", "sorry", "excuse", "actually", "what", "what's", "who", "who's",
    "where", "where's", "when", "why", "how", "how's", "which", "tell", "repeat", "again",
];

/// Unexplained words a stretch heard during the answer needs to be the user's without one of
/// [`TAKING_THE_TURN`] (and they must be most of its words): fewer are most often the echo misheard ("And these
/// two front deaths" for "front desk and bookings") or an acknowledgement said over it.
const TELLING_WORDS: usize = 4;

/// Speech overheard during the answer, transcribed.
pub struct Overheard {
    pub text: String,
    /// When the user began saying it.
    pub onset: Instant,
}

pub struct AnswerListener {
    pipeline: Arc<Pipeline>,
    voice: VoiceActivity,
    /// PCM16 bytes from sample `audio_start` on: the pre-roll, and the speech being judged.
    audio: Vec<u8>,
    audio_start: usize,
    /// The stretch of speech being heard or judged.
    speech: Option<Speech>,
    /// Where the detector last heard speech begin.
    last_start: Option<usize>,
}

struct Speech {
    start: usize,
    onset: Instant,
    /// Judged when the stream reaches this sample, if it has not paused before.
    check_at: usize,
    /// Where the user's own words may begin: before this, speech that went on was judged not theirs.
    theirs_from: usize,
    /// Being transcribed, up to sample `until`.
    judging: Option<(usize, AbortOnDropHandle<Result<String, SttError>>)>,
    /// Transcribed up to this sample and handed out.
    judged_until: Option<usize>,
}

impl AnswerListener {
    /// `None` without the voice activity model: loudness alone cannot tell the answer's echo from the user.
    pub fn new(pipeline: Arc<Pipeline>) -> Option<Self> {
        let voice = pipeline.voice_activity()?;
        Some(Self { pipeline, voice, audio: Vec::new(), audio_start: 0, speech: None, last_start: None })
    }

    /// Reads a frame of the microphone; returns where speech started and stopped in it, in samples since
    /// listening began.
    pub fn push(&mut self, frame: &[u8]) -> Vec<VoiceEvent> {
        let events = self.voice.push(frame);
        self.audio.extend_from_slice(frame);
        for event in &events {
            if let VoiceEvent::SpeechStarted { at_sample } = *event {
                self.last_start = Some(at_sample);
                if self.speech.is_none() {
                    self.speech = Some(self.speech_from(at_sample));
                }
            }
        }
        match &self.speech {
            None => self.keep_from(self.voice.samples().saturating_sub(PRE_ROLL_SAMPLES)),
            Some(speech) if speech.judging.is_none() && speech.judged_until.is_none() => {
                if self.voice.samples() >= speech.check_at || self.voice.silent_for(VOICE_PAUSE_SAMPLES) {
                    self.transcribe();
                }
            }
            Some(_) => {}
        }
        events
    }

    /// The next stretch of speech, transcribed; waits forever while there is none (for `select!`: stopping the
    /// wait loses nothing). The caller then [`dismiss`](Self::dismiss)es it or takes it as the user's turn.
    pub async fn next(&mut self) -> Overheard {
        let Some(speech) = self.speech.as_mut() else { return std::future::pending().await };
        let Some((until, task)) = speech.judging.as_mut() else { return std::future::pending().await };
        let text = match task.await {
            Ok(Ok(text)) => text,
            Ok(Err(error)) => {
                tracing::debug!(%error, "speech during the answer could not be transcribed: taken for noise");
                String::new()
            }
            Err(error) => {
                tracing::debug!(%error, "the transcription of speech during the answer stopped");
                String::new()
            }
        };
        speech.judged_until = Some(*until);
        speech.judging = None;
        Overheard { text, onset: speech.onset }
    }

    /// The speech handed out by [`next`](Self::next) does not count: listening goes on after it (with what the
    /// user went on to say since, if anything). Speech that goes on is judged again later with its last few
    /// seconds, so words said across the moment it was judged are heard together.
    pub fn dismiss(&mut self) {
        let Some((start, until)) = self.speech.as_ref().and_then(|speech| Some((speech.start, speech.judged_until?))) else { return };
        self.speech = match self.last_start {
            Some(start) if start >= until => Some(self.speech_from(start)),
            // Speech went on past what was judged (and may have ended while it was being transcribed).
            _ if self.voice.speaking() || self.voice.speech_end().is_some_and(|end| end > until) => {
                let mut going_on = self.speech_from(start.max(self.voice.samples().saturating_sub(JUDGED_SAMPLES)));
                going_on.check_at = self.voice.samples() + LONG_SPEECH_SAMPLES;
                // A word cut in two at the moment judged is heard again.
                going_on.theirs_from = until.saturating_sub(OVERLAP_SAMPLES).max(going_on.start);
                going_on.onset = self.instant_of(going_on.theirs_from);
                Some(going_on)
            }
            _ => None,
        };
        let keep = self.speech.as_ref().map_or(self.voice.samples(), |speech| speech.start);
        self.keep_from(keep.saturating_sub(PRE_ROLL_SAMPLES));
    }

    /// The user's speech, from just before it began to now, as PCM16 bytes: the start of their turn. When
    /// they spoke over the answer's voice, the part of it already judged the answer's is left out.
    pub fn into_speech(mut self) -> Vec<u8> {
        if let Some(from) = self.speech.as_ref().map(|speech| speech.theirs_from) {
            self.keep_from(from.saturating_sub(PRE_ROLL_SAMPLES));
        }
        self.audio
    }

    /// When the stream's `sample` was heard (frames arrive as they are recorded).
    fn instant_of(&self, sample: usize) -> Instant {
        let ago = Duration::from_millis(u64::try_from(self.voice.samples().saturating_sub(sample) / SAMPLES_PER_MS).unwrap_or(0));
        let now = Instant::now();
        now.checked_sub(ago).unwrap_or(now)
    }

    fn speech_from(&self, start: usize) -> Speech {
        Speech {
            start,
            onset: self.instant_of(start),
            check_at: start + LONG_SPEECH_SAMPLES,
            theirs_from: start,
            judging: None,
            judged_until: None,
        }
    }

    /// Drops the audio before `sample`.
    fn keep_from(&mut self, sample: usize) {
        let drop = sample.saturating_sub(self.audio_start).saturating_mul(2).min(self.audio.len() & !1);
        if drop > 0 {
            self.audio.drain(..drop);
            self.audio_start += drop / 2;
        }
    }

    fn transcribe(&mut self) {
        let until = self.voice.samples();
        let mut clip = Recording::new(AudioEncoding::Pcm16, usize::MAX);
        let audio = clip.push(&self.audio).and_then(|()| clip.finish());
        let Some(transcription) = audio.ok().and_then(|audio| self.pipeline.transcription(audio)) else { return };
        if let Some(speech) = self.speech.as_mut() {
            speech.judging = Some((until, AbortOnDropHandle::new(tokio::spawn(transcription))));
        }
    }
}

/// Why speech `heard` while `playing` (the text of the answer being played, `None` once it has all been
/// played) does not take the turn; `None` when it does.
///
/// While the answer plays, its own words come back through the microphone, misheard, and mixed with anything
/// the user says over them. So the words the answer explains (the same, or sounding alike: "tires" for
/// "tyres") are set aside, and what is left decides: a word people cut in with ("wait", "stop", "what"), or
/// several words neither the answer nor an acknowledgement explains, take the turn; anything less does not.
pub fn ignored(heard: &str, playing: Option<&str>) -> Option<IgnoredSpeech> {
    let heard = words(heard);
    if heard.is_empty() {
        return Some(IgnoredSpeech::Noise);
    }
    let answer = words(playing?);
    let unexplained: Vec<&str> =
        heard.iter().map(String::as_str).filter(|word| !answer.iter().any(|said| sounds_like(said, word))).collect();
    let telling = unexplained.iter().filter(|word| is_telling(word)).count();
    let meaningful = heard.iter().filter(|word| !COMMON.contains(&word.as_str())).count();
    if (telling >= TELLING_WORDS && telling * 2 > meaningful) || unexplained.iter().any(|word| TAKING_THE_TURN.contains(word)) {
        return None;
    }
    let echoed = unexplained.len() < heard.len();
    Some(if telling == 0 && !unexplained.is_empty() && unexplained.iter().all(|word| BACKCHANNELS.contains(word)) {
        IgnoredSpeech::Backchannel
    } else if echoed {
        IgnoredSpeech::Echo
    } else {
        IgnoredSpeech::Noise
    })
}

/// Whether an unexplained word counts towards the user's turn: not a common word or an acknowledgement, and not
/// a scrap (speech-to-text writes a cut-off word as "bl", "a.m." as "a", "m").
fn is_telling(word: &str) -> bool {
    const SCRAP: usize = 2;
    !COMMON.contains(&word) && !BACKCHANNELS.contains(&word) && (word.chars().count() > SCRAP || word.chars().all(|c| c.is_ascii_digit()))
}

/// Lower-case words without punctuation; "uh-huh" is two, and so is "7.30pm" ("7", "30", "pm": the answer may
/// write "7:30 pm").
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for word in text.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let word = word.trim_matches('\'').to_lowercase();
        let mut rest = word.as_str();
        while let Some(first) = rest.chars().next() {
            let digits = first.is_ascii_digit();
            let end = rest.find(|c: char| c.is_ascii_digit() != digits).unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    words
}

/// Whether speech-to-text may have heard the answer's word `said` as `heard`: the same word, its start (the
/// word cut off: "sun" for "Sundays", "no" for "not"), or for longer words one that differs in at most half its letters
/// ("tires" for "tyres", "break" for "brakes").
///
/// A word people cut in with is only explained by the same word or a longer one it begins ("no" by "not"): by
/// sound alone "what" would pass for "that", "wait" for "with" and "stop" for "shop".
fn sounds_like(said: &str, heard: &str) -> bool {
    const LONG: usize = 4;
    const START: usize = 2;
    let (said_len, heard_len) = (said.chars().count(), heard.chars().count());
    said == heard
        || (heard_len >= START && said.starts_with(heard))
        || (!TAKING_THE_TURN.contains(&heard)
            && said_len >= LONG
            && heard_len >= LONG
            && strsim::normalized_levenshtein(said, heard) >= 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "The capital of France is Paris. It is known for the Eiffel Tower.";

    #[test]
    fn the_answer_coming_back_through_the_microphone_is_ignored() {
        for echo in
            ["The capital of France is Paris.", "capital of Franz is Paris", "known for the Eiffel Tower", "Paris.", "It is known for"]
        {
            assert_eq!(ignored(echo, Some(ANSWER)), Some(IgnoredSpeech::Echo), "{echo}");
        }
    }

    /// What speech-to-text made of answers played back at half level in the evaluation, some with an
    /// acknowledgement said over them.
    #[test]
    fn the_answer_misheard_or_mixed_with_an_acknowledgement_is_ignored() {
        let tune_up = "Basic tune-up: €45 (gears and brakes adjusted, tyres pumped, chain cleaned and lubed).";
        for heard in [
            "Okay, you're 45 gears and break suggested tires pumped chain clean and moved",
            "Basically, you're a weighty fight. Time and breaks adjusted. Tires pumped, chain cleaned and lubed.",
        ] {
            assert!(ignored(heard, Some(tune_up)).is_some(), "{heard}");
        }
        let closed = "It is closed on Mondays and Sundays, and on public holidays.";
        assert!(ignored("color base.", Some(closed)).is_some());
        assert!(ignored("it is close and these way sun", Some(closed)).is_some(), "\"Okay.\" said over the echo");
        let late = "The workshop is open Tuesday to Friday from 8:30 am to 6 pm, with a late opening on Thursdays until 7:30 pm.";
        assert_eq!(ignored("days until 7.30pm.", Some(late)), Some(IgnoredSpeech::Echo));
        assert_eq!(ignored("to Friday from 8 30 a.m to 6 p.m.", Some(late)), Some(IgnoredSpeech::Echo));
        let puncture = "Puncture repair: €12 per wheel, €15 for a tubeless tyre.";
        assert!(ignored("You're as 15 for a two-bl", Some(puncture)).is_some());
        for (heard, answer) in [
            ("Anything no, okay list is charged at euros 40 per hour.", "Anything not on this list is charged at €40 per hour."),
            (
                "While he's high, visit Craig carbon frame goes to fiber clinic.",
                "No. We do not repair carbon frames either: a cracked carbon frame goes to Fibre Clinic.",
            ),
            ("You're no", "Your notes don't say anything about student discount."),
            ("And these two front deaths.", "Ines Duarte: front desk and bookings on Saturdays, and on the late Thursday evenings."),
        ] {
            assert!(ignored(heard, Some(answer)).is_some(), "{heard}");
        }
    }

    #[test]
    fn acknowledgements_while_the_answer_plays_are_ignored() {
        for said in ["Uh-huh.", "Mm-hmm.", "Okay.", "Right.", "Oh, I see.", "Yeah, okay.", "Thank you."] {
            assert_eq!(ignored(said, Some(ANSWER)), Some(IgnoredSpeech::Backchannel), "{said}");
        }
    }

    #[test]
    fn other_speech_takes_the_turn() {
        for said in [
            "Stop.",
            "What is the capital of Germany?",
            "No, I meant Germany.",
            "Okay, and what about Spain?",
            "Wait, how tall is it?",
            "Yeah, but what about the Louvre?",
            "Please give me the opening hours instead.",
        ] {
            assert_eq!(ignored(said, Some(ANSWER)), None, "{said}");
        }
        // Cut-in words are not taken for the answer's words they sound like.
        assert_eq!(ignored("What is the capital of Germany?", Some("That is all there is to it.")), None);
        assert_eq!(ignored("Wait.", Some("We work with every brand.")), None);
        assert_eq!(ignored("Stop.", Some("The shop opens at nine.")), None);
        // Cutting in over the answer's own voice.
        let tune_up = "Basic tune-up: €45 (gears and brakes adjusted, tyres pumped, chain cleaned and lubed).";
        assert_eq!(ignored("Basic tune-up 45. Wait, what time is it? Gears", Some(tune_up)), None);
        assert_eq!(ignored("You're as way to what", Some(tune_up)), None);
        let closed = "It is closed on Mondays and Sundays, and on public holidays.";
        assert_eq!(ignored("it is close and it's what's the time visit", Some(closed)), None);
    }

    #[test]
    fn once_the_answer_has_played_only_noise_is_ignored() {
        assert_eq!(ignored("Okay.", None), None, "a short reply after the answer is the user's turn");
        assert_eq!(ignored("Paris.", None), None);
        assert_eq!(ignored(" ... ", None), Some(IgnoredSpeech::Noise));
        assert_eq!(ignored("", Some(ANSWER)), Some(IgnoredSpeech::Noise));
    }
}
