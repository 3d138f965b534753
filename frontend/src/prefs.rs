//! How the assistant speaks and looks, kept per browser in localStorage (the hands-free choices are in
//! [`crate::settings`]). Storage can be unavailable (private modes): then the defaults apply each visit.

use parlance_shared::SPEECH_RATE_RANGE;

const RATE_KEY: &str = "parlance.speech_rate";
const SPEAK_KEY: &str = "parlance.speak_answers";
const THEME_KEY: &str = "parlance.theme";
const VOICE_KEY: &str = "parlance.voice";

/// The page's colours: the system's choice, or one the user picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub fn name(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "light" => Self::Light,
            "dark" => Self::Dark,
            _ => Self::System,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Preferences {
    /// Relative to the voice's own pace.
    pub speech_rate: f32,
    /// Whether answers are spoken at all.
    pub speak_answers: bool,
    pub theme: Theme,
    /// An id from `GET /api/voices`; `None` for the server's default.
    pub voice: Option<String>,
}

impl Default for Preferences {
    fn default() -> Self {
        Self { speech_rate: 1.0, speak_answers: true, theme: Theme::System, voice: None }
    }
}

impl Preferences {
    /// From the stored strings; anything unreadable or out of range falls back to the default.
    pub fn parse(rate: Option<&str>, speak: Option<&str>, theme: Option<&str>, voice: Option<&str>) -> Self {
        let speech_rate = rate
            .and_then(|value| value.trim().parse::<f32>().ok())
            .filter(|rate| rate.is_finite() && SPEECH_RATE_RANGE.contains(rate))
            .unwrap_or(1.0);
        let speak_answers = speak.map(str::trim) != Some("false");
        let voice = voice.map(str::trim).filter(|voice| !voice.is_empty()).map(str::to_owned);
        Self { speech_rate, speak_answers, theme: theme.map(Theme::parse).unwrap_or_default(), voice }
    }

    /// The rate to send with a turn: none at the voice's own pace, so servers without rates are unaffected.
    pub fn rate_to_send(&self) -> Option<f32> {
        ((self.speech_rate - 1.0).abs() > 0.01).then_some(self.speech_rate)
    }

    /// The rate for a socket message: always sent, since the socket keeps the last one it was given and the
    /// user may have gone back to the voice's own pace.
    pub fn socket_rate(&self) -> Option<f32> {
        Some(self.speech_rate)
    }

    /// The voice for a socket message: always sent, the default as an empty name, for the same reason.
    pub fn socket_voice(&self) -> Option<String> {
        Some(self.voice.clone().unwrap_or_default())
    }

    /// The stored strings, in the order [`Preferences::parse`] reads them (an empty voice: the default).
    pub fn to_strings(&self) -> [(&'static str, String); 4] {
        [
            (RATE_KEY, format!("{:.2}", self.speech_rate)),
            (SPEAK_KEY, self.speak_answers.to_string()),
            (THEME_KEY, self.theme.name().to_owned()),
            (VOICE_KEY, self.voice.clone().unwrap_or_default()),
        ]
    }

    /// Forgets a chosen voice the server no longer has (one removed since), so turns do not ask for it.
    /// Returns whether anything changed.
    pub fn keep_voice_among(&mut self, voices: &[parlance_shared::VoiceInfo]) -> bool {
        let gone = self.voice.as_ref().is_some_and(|chosen| !voices.iter().any(|voice| &voice.id == chosen));
        if gone {
            self.voice = None;
        }
        gone
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn load() -> Preferences {
    let Some(storage) = storage() else { return Preferences::default() };
    let read = |key| storage.get_item(key).ok().flatten();
    Preferences::parse(read(RATE_KEY).as_deref(), read(SPEAK_KEY).as_deref(), read(THEME_KEY).as_deref(), read(VOICE_KEY).as_deref())
}

pub fn save(preferences: &Preferences) {
    let Some(storage) = storage() else { return };
    for (key, value) in preferences.to_strings() {
        // A full or blocked storage only costs the setting across reloads.
        let _ = storage.set_item(key, &value);
    }
}

/// Shows `theme` now: the stylesheet follows the root's `data-theme`, or the system without one.
pub fn apply_theme(theme: Theme) {
    let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) else { return };
    let _ = match theme {
        Theme::System => root.remove_attribute("data-theme"),
        other => root.set_attribute("data-theme", other.name()),
    };
}

#[cfg(test)]
mod tests {
    use parlance_shared::VoiceInfo;

    use super::*;

    fn parse(strings: &[(&'static str, String); 4]) -> Preferences {
        Preferences::parse(Some(&strings[0].1), Some(&strings[1].1), Some(&strings[2].1), Some(&strings[3].1))
    }

    #[test]
    fn stored_preferences_are_read_back() {
        let stored = Preferences { speech_rate: 1.5, speak_answers: false, theme: Theme::Dark, voice: Some("espeak-ng-en-gb".into()) };
        assert_eq!(parse(&stored.to_strings()), stored);
        assert_eq!(parse(&Preferences::default().to_strings()), Preferences::default(), "the default voice is stored as none");
        assert_eq!(Preferences::parse(None, None, None, None), Preferences::default());
    }

    #[test]
    fn junk_or_out_of_range_falls_back_to_the_default() {
        let read = Preferences::parse(Some("9"), Some("maybe"), Some("purple"), Some("  "));
        assert_eq!(read, Preferences::default());
        assert_eq!(Preferences::parse(Some("NaN"), None, None, None).speech_rate, 1.0);
        assert_eq!(Preferences::parse(Some("0.3"), None, None, None).speech_rate, 1.0);
    }

    #[test]
    fn the_normal_pace_sends_no_rate() {
        assert_eq!(Preferences::default().rate_to_send(), None);
        assert_eq!(Preferences { speech_rate: 1.6, ..Preferences::default() }.rate_to_send(), Some(1.6));
    }

    #[test]
    fn a_voice_the_server_no_longer_has_is_forgotten() {
        let voices = [
            VoiceInfo { id: "joe".into(), label: "Joe".into(), default: true },
            VoiceInfo { id: "espeak-ng-en-gb".into(), label: "British".into(), default: false },
        ];
        let mut kept = Preferences { voice: Some("espeak-ng-en-gb".into()), ..Preferences::default() };
        assert!(!kept.keep_voice_among(&voices));
        assert_eq!(kept.voice.as_deref(), Some("espeak-ng-en-gb"));
        let mut gone = Preferences { voice: Some("lessac".into()), ..Preferences::default() };
        assert!(gone.keep_voice_among(&voices));
        assert_eq!(gone.voice, None);
        let mut default = Preferences::default();
        assert!(!default.keep_voice_among(&voices));
    }
}
