//! The hands-free settings, kept in localStorage so the choice survives a reload. Storage can be unavailable
//! (private modes): then the defaults apply each visit.

use crate::streaming::vad::{DEFAULT_SILENCE_MS, SILENCE_MS_RANGE};

const HANDS_FREE_KEY: &str = "parlance.hands_free";
const SILENCE_KEY: &str = "parlance.silence_ms";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandsFreeSettings {
    pub enabled: bool,
    /// How long a pause ends the question.
    pub silence_ms: u32,
}

impl Default for HandsFreeSettings {
    fn default() -> Self {
        Self { enabled: false, silence_ms: DEFAULT_SILENCE_MS }
    }
}

impl HandsFreeSettings {
    /// From the stored strings; anything unreadable or out of range falls back to the default, so a tampered
    /// or old value cannot make the detector unusable.
    pub fn parse(enabled: Option<&str>, silence_ms: Option<&str>) -> Self {
        let enabled = enabled.map(str::trim) == Some("true");
        let silence_ms = silence_ms
            .and_then(|value| value.trim().parse::<u32>().ok())
            .filter(|ms| SILENCE_MS_RANGE.contains(ms))
            .unwrap_or(DEFAULT_SILENCE_MS);
        Self { enabled, silence_ms }
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn load() -> HandsFreeSettings {
    let Some(storage) = storage() else { return HandsFreeSettings::default() };
    let read = |key| storage.get_item(key).ok().flatten();
    HandsFreeSettings::parse(read(HANDS_FREE_KEY).as_deref(), read(SILENCE_KEY).as_deref())
}

pub fn save(settings: HandsFreeSettings) {
    let Some(storage) = storage() else { return };
    // A full or blocked storage only costs the setting across reloads.
    let _ = storage.set_item(HANDS_FREE_KEY, if settings.enabled { "true" } else { "false" });
    let _ = storage.set_item(SILENCE_KEY, &settings.silence_ms.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_read_back() {
        assert_eq!(HandsFreeSettings::parse(Some("true"), Some("1200")), HandsFreeSettings { enabled: true, silence_ms: 1200 });
        assert_eq!(HandsFreeSettings::parse(None, None), HandsFreeSettings::default());
    }

    #[test]
    fn junk_or_out_of_range_falls_back_to_the_default() {
        let settings = HandsFreeSettings::parse(Some("yes"), Some("5"));
        assert_eq!(settings, HandsFreeSettings { enabled: false, silence_ms: DEFAULT_SILENCE_MS });
        assert_eq!(HandsFreeSettings::parse(Some("true"), Some("lots")).silence_ms, DEFAULT_SILENCE_MS);
    }
}
