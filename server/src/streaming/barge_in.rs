//! Listening while the answer plays (`TurnDetection::barge_in`). Without headphones the microphone hears the
//! answer too, and people say "uh-huh" while they listen: stopping at every sound, as a loudness detector does,
//! makes the assistant interrupt itself. Here the voice activity model finds speech in the stream; each stretch
//! is transcribed at its first pause (or once it has gone on too long to be an acknowledgement), and its words
//! decide: the answer's own words coming back, an acknowledgement, or nothing at all are ignored; anything else
//! is the user taking the turn.

use std::collections::HashSet;
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
/// Speech going on this long without a pause is judged before it ends: acknowledgements are shorter, and a
/// user cutting in should not have to pause first.
const LONG_SPEECH_SAMPLES: usize = 1_000 * SAMPLES_PER_MS;
/// The most words an acknowledgement has ("oh I see, okay").
const MAX_BACKCHANNEL_WORDS: usize = 4;

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

/// Words too common to show that speech repeats the answer.
const COMMON: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "of", "to", "in", "on", "at", "by", "for", "with", "and", "or", "it", "that",
    "this", "what", "i", "you", "do", "does", "can",
];

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
                let long = self.voice.samples().saturating_sub(speech.start) >= LONG_SPEECH_SAMPLES;
                if long || self.voice.silent_for(VOICE_PAUSE_SAMPLES) {
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
    /// user went on to say since, if anything).
    pub fn dismiss(&mut self) {
        let Some(until) = self.speech.as_ref().and_then(|speech| speech.judged_until) else { return };
        self.speech = match self.last_start {
            Some(start) if start >= until => Some(self.speech_from(start)),
            _ if self.voice.speaking() => Some(self.speech_from(until)),
            _ => None,
        };
        let keep = self.speech.as_ref().map_or(self.voice.samples(), |speech| speech.start);
        self.keep_from(keep.saturating_sub(PRE_ROLL_SAMPLES));
    }

    /// The user's speech, from just before it began to now, as PCM16 bytes: the start of their turn.
    pub fn into_speech(mut self) -> Vec<u8> {
        if let Some(start) = self.speech.as_ref().map(|speech| speech.start) {
            self.keep_from(start.saturating_sub(PRE_ROLL_SAMPLES));
        }
        self.audio
    }

    fn speech_from(&self, start: usize) -> Speech {
        let ago = Duration::from_millis(u64::try_from(self.voice.samples().saturating_sub(start) / SAMPLES_PER_MS).unwrap_or(0));
        let now = Instant::now();
        Speech { start, onset: now.checked_sub(ago).unwrap_or(now), judging: None, judged_until: None }
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
pub fn ignored(heard: &str, playing: Option<&str>) -> Option<IgnoredSpeech> {
    let heard = words(heard);
    if heard.is_empty() {
        return Some(IgnoredSpeech::Noise);
    }
    let playing = playing?;
    if repeats(&heard, &words(playing)) {
        return Some(IgnoredSpeech::Echo);
    }
    (heard.len() <= MAX_BACKCHANNEL_WORDS && heard.iter().all(|word| BACKCHANNELS.contains(&word.as_str())))
        .then_some(IgnoredSpeech::Backchannel)
}

/// Lower-case words without punctuation; "uh-huh" is two.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|word| word.trim_matches('\'').to_lowercase())
        .filter(|word| !word.is_empty())
        .collect()
}

/// Whether `heard` is a stretch of `answer`, as speech-to-text hears it from a speaker: most of its telling
/// words are the answer's (allowing a misheard ending: "Franz" for "France"), or most of its word pairs are.
/// A question about something else that shares a phrase with the answer ("What is the capital of Germany?"
/// during "The capital of France is Paris.") is neither.
fn repeats(heard: &[String], answer: &[String]) -> bool {
    let in_answer = |word: &String| answer.iter().any(|said| said == word || same_stem(said, word));
    let telling: Vec<&String> = heard.iter().filter(|word| !COMMON.contains(&word.as_str())).collect();
    let telling_share = if telling.is_empty() {
        share(heard.iter().filter(|word| in_answer(word)).count(), heard.len())
    } else {
        share(telling.iter().filter(|word| in_answer(word)).count(), telling.len())
    };
    let answer_pairs: HashSet<(&String, &String)> = answer.iter().zip(answer.iter().skip(1)).collect();
    let pairs: Vec<(&String, &String)> = heard.iter().zip(heard.iter().skip(1)).collect();
    let pair_share = share(pairs.iter().filter(|pair| answer_pairs.contains(pair)).count(), pairs.len());
    telling_share >= 0.75 || (pairs.len() >= 2 && pair_share >= 0.5)
}

fn same_stem(a: &str, b: &str) -> bool {
    const STEM: usize = 4;
    a.len() >= STEM && b.len() >= STEM && a.get(..STEM).is_some_and(|stem| b.starts_with(stem))
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
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
        ] {
            assert_eq!(ignored(said, Some(ANSWER)), None, "{said}");
        }
    }

    #[test]
    fn once_the_answer_has_played_only_noise_is_ignored() {
        assert_eq!(ignored("Okay.", None), None, "a short reply after the answer is the user's turn");
        assert_eq!(ignored("Paris.", None), None);
        assert_eq!(ignored(" ... ", None), Some(IgnoredSpeech::Noise));
        assert_eq!(ignored("", Some(ANSWER)), Some(IgnoredSpeech::Noise));
    }
}
