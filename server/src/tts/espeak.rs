//! espeak-ng through its C library: IPA phonemes for the Piper voice, and espeak-ng's own voice as the fallback.
//!
//! The library rather than the `espeak-ng` command: phonemes are needed for every sentence, and a process per
//! sentence costs more than the lookup itself; the library also tells where each clause ends, which is how the
//! clause's punctuation is kept for Piper. espeak-ng keeps global state (the selected voice, the synthesis
//! callback, internal buffers) and is not thread-safe, so one process-wide lock serialises every call.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_short, c_uint, c_void};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// The voice selected at start-up; Piper voices name their own in their JSON.
pub const DEFAULT_VOICE: &str = "en-us";

// From espeak-ng/speak_lib.h (ABI stable since 1.x).
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
const CHARS_UTF8: c_int = 1;
const PHONEMES_IPA: c_int = 0x02;
const POS_CHARACTER: c_int = 1;
const EE_OK: c_int = 0;
const PARAMETER_RATE: c_int = 1;
/// espeak-ng's own pace, in words per minute (`espeakRATE_NORMAL`).
const NORMAL_WORDS_PER_MINUTE: f32 = 175.0;

type SynthCallback = extern "C" fn(wav: *mut c_short, samples: c_int, events: *mut c_void) -> c_int;

#[link(name = "espeak-ng")]
unsafe extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    fn espeak_TextToPhonemes(textptr: *mut *const c_void, textmode: c_int, phonememode: c_int) -> *const c_char;
    fn espeak_SetSynthCallback(callback: SynthCallback);
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EspeakError {
    #[error("espeak-ng could not start (is its data installed? Debian: espeak-ng-data)")]
    Initialize,
    #[error("espeak-ng has no voice {0:?}")]
    Voice(String),
    #[error("the voice name {0:?} holds a NUL character")]
    NulInVoice(String),
    #[error("the text holds a NUL character")]
    NulInText,
    #[error("espeak-ng could not speak the text (error {0})")]
    Synthesis(c_int),
}

/// The initialised library; every use goes through [`Espeak::lock`].
pub struct Espeak {
    sample_rate: u32,
}

static ENGINE: OnceLock<Result<Espeak, EspeakError>> = OnceLock::new();
/// Held for every call into the library; holds the name of the voice currently selected in it.
static CALLS: Mutex<String> = Mutex::new(String::new());

thread_local! {
    /// Samples of the synthesis running on this thread: espeak-ng calls back on the caller's thread in
    /// synchronous mode, and the lock keeps any other synthesis out meanwhile.
    static SYNTHESIZED: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
}

impl Espeak {
    /// The library, initialised on first use (once per process).
    pub fn get() -> Result<&'static Espeak, EspeakError> {
        ENGINE.get_or_init(initialize).as_ref().map_err(Clone::clone)
    }

    /// Rate of the samples [`Espeak::synthesize`] returns.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// IPA phonemes of `text`, clause by clause as espeak-ng splits it, each clause followed by the
    /// punctuation that ended it (Piper's voices were trained with it: it shapes pauses and intonation).
    pub fn phonemes(&self, text: &str, voice: &str) -> Result<String, EspeakError> {
        let text = CString::new(text).map_err(|_| EspeakError::NulInText)?;
        let bytes = text.as_bytes();
        let start = text.as_ptr().cast::<c_void>();
        let mut clauses: Vec<String> = Vec::new();
        let _guard = self.lock(voice)?;
        let mut cursor = start;
        while !cursor.is_null() {
            let clause_start = offset(start, cursor);
            // SAFETY: `cursor` points into `text`, a NUL-terminated buffer alive for the whole loop; espeak-ng
            // advances it within the buffer or sets it to NULL at the end. The returned string is espeak-ng's
            // static buffer, copied before the next call, under the lock.
            let phonemes = unsafe {
                let result = espeak_TextToPhonemes(&mut cursor, CHARS_UTF8, PHONEMES_IPA);
                if result.is_null() { String::new() } else { CStr::from_ptr(result).to_string_lossy().into_owned() }
            };
            let clause_end = if cursor.is_null() { bytes.len() } else { offset(start, cursor).min(bytes.len()) };
            let consumed = String::from_utf8_lossy(&bytes[clause_start.min(clause_end)..clause_end]);
            let mut clause = without_language_switches(phonemes.trim());
            clause.extend(clause_mark(&consumed));
            if !clause.is_empty() {
                clauses.push(clause);
            }
        }
        Ok(clauses.join(" "))
    }

    /// espeak-ng's own voice, `factor` times as fast as its own pace: 16-bit mono samples at
    /// [`Espeak::sample_rate`].
    pub fn synthesize_at(&self, text: &str, voice: &str, factor: f32) -> Result<Vec<i16>, EspeakError> {
        let text = CString::new(text).map_err(|_| EspeakError::NulInText)?;
        let _guard = self.lock(voice)?;
        SYNTHESIZED.with_borrow_mut(Vec::clear);
        // The rate is global state: set for every synthesis, as the last one may have asked for another.
        let words_per_minute = (NORMAL_WORDS_PER_MINUTE * factor).round() as c_int;
        // SAFETY: the callback only touches this thread's buffer; `text` outlives the synchronous call; the
        // caller holds the lock for the parameter as for the rest.
        let status = unsafe {
            espeak_SetParameter(PARAMETER_RATE, words_per_minute, 0);
            espeak_SetSynthCallback(collect_samples);
            espeak_Synth(
                text.as_ptr().cast(),
                text.as_bytes_with_nul().len(),
                0,
                POS_CHARACTER,
                0,
                CHARS_UTF8 as c_uint,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let samples = SYNTHESIZED.with_borrow_mut(std::mem::take);
        if status != EE_OK {
            return Err(EspeakError::Synthesis(status));
        }
        Ok(samples)
    }

    /// Exclusive use of the library, with `voice` selected.
    fn lock(&self, voice: &str) -> Result<MutexGuard<'static, String>, EspeakError> {
        let mut selected = lock_calls();
        if *selected != voice {
            select_voice(voice)?;
            voice.clone_into(&mut selected);
        }
        Ok(selected)
    }
}

fn lock_calls() -> MutexGuard<'static, String> {
    // The lock guards espeak-ng's state, not data of ours that a panic could leave half-written.
    CALLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Must run under the lock.
fn select_voice(voice: &str) -> Result<(), EspeakError> {
    let name = CString::new(voice).map_err(|_| EspeakError::NulInVoice(voice.to_owned()))?;
    // SAFETY: a NUL-terminated name, alive during the call; the caller holds the lock.
    if unsafe { espeak_SetVoiceByName(name.as_ptr()) } != EE_OK {
        return Err(EspeakError::Voice(voice.to_owned()));
    }
    Ok(())
}

fn initialize() -> Result<Espeak, EspeakError> {
    let mut selected = lock_calls();
    // SAFETY: called once, under the lock; a NULL path means the data directory espeak-ng was built with.
    // DONT_EXIT: without it espeak-ng ends the whole process when its data is missing.
    let sample_rate = unsafe { espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), INITIALIZE_DONT_EXIT) };
    let sample_rate = u32::try_from(sample_rate).ok().filter(|rate| *rate > 0).ok_or(EspeakError::Initialize)?;
    select_voice(DEFAULT_VOICE)?;
    DEFAULT_VOICE.clone_into(&mut selected);
    tracing::debug!(sample_rate, "espeak-ng initialised");
    Ok(Espeak { sample_rate })
}

extern "C" fn collect_samples(wav: *mut c_short, samples: c_int, _events: *mut c_void) -> c_int {
    if let (false, Ok(count)) = (wav.is_null(), usize::try_from(samples)) {
        // SAFETY: espeak-ng hands `samples` valid samples at `wav` for the duration of the call.
        let chunk = unsafe { std::slice::from_raw_parts(wav, count) };
        SYNTHESIZED.with_borrow_mut(|buffer| buffer.extend_from_slice(chunk));
    }
    0 // go on
}

/// The punctuation that ended a clause, found in the text espeak-ng consumed for it. espeak-ng reads one
/// character into the next word ("Hello, w"), so the mark is the last one followed by a space or the end.
fn clause_mark(consumed: &str) -> Option<char> {
    let chars: Vec<char> = consumed.chars().collect();
    (0..chars.len()).rev().find_map(|i| {
        let ends_clause = chars.get(i + 1).is_none_or(|next| next.is_whitespace() || matches!(next, '"' | '\'' | ')' | '”' | '’'));
        (matches!(chars[i], ',' | '.' | ';' | ':' | '!' | '?') && ends_clause).then_some(chars[i])
    })
}

fn offset(start: *const c_void, cursor: *const c_void) -> usize {
    (cursor as usize).saturating_sub(start as usize)
}

/// espeak-ng marks words it reads with another language's rules as `(fr)word(en)`; Piper has no ids for those.
fn without_language_switches(phonemes: &str) -> String {
    let mut kept = String::with_capacity(phonemes.len());
    let mut inside = false;
    for c in phonemes.chars() {
        match c {
            '(' => inside = true,
            ')' => inside = false,
            _ if !inside => kept.push(c),
            _ => {}
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phonemes_keep_the_clause_punctuation() {
        let espeak = Espeak::get().unwrap();
        let phonemes = espeak.phonemes("Hello, world. How are you?", DEFAULT_VOICE).unwrap();
        assert_eq!(phonemes, "həlˈoʊ, wˈɜːld. hˈaʊ ɑːɹ juː?");
        assert!(phonemes.contains("həlˈoʊ"), "{phonemes}");
    }

    #[test]
    fn the_clause_mark_ignores_the_next_words_first_letter_and_decimals() {
        assert_eq!(clause_mark("Hello, w"), Some(','));
        assert_eq!(clause_mark("mith paid 3.5 dollars, e"), Some(','));
        assert_eq!(clause_mark("ow are you?"), Some('?'));
        assert_eq!(clause_mark("said \"no.\" T"), Some('.'));
        assert_eq!(clause_mark("it costs 3.5"), None);
    }

    #[test]
    fn language_switch_marks_are_dropped() {
        assert_eq!(without_language_switches("(fr)ʃɑ̃sɔ̃(en) bˈɛst"), "ʃɑ̃sɔ̃ bˈɛst");
    }
}
