//! One mic button, two ways to use it: hold it (or Space) while talking, or tap once to start and again to stop.
//! A press that lasts at least [`HOLD_MS`] is push-to-talk, so its release ends the recording; a shorter one is a
//! tap, so recording goes on until the next press. Pure Rust, driven by timestamps, so it is unit-tested natively.

/// Shorter presses are taps. Long enough that a quick tap never ends a recording, short enough that a
/// deliberate hold of half a second already counts.
pub const HOLD_MS: f64 = 350.0;

/// What a press or a release asks the app to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicAction {
    StartRecording,
    StopRecording,
    Nothing,
}

/// Remembers the press that started the current recording.
#[derive(Debug, Default, Clone)]
pub struct PressTracker {
    /// When the button went down to start recording; `None` once released or when nothing is pressed.
    pressed_at: Option<f64>,
    /// A tap started this recording: the next press stops it.
    latched: bool,
}

impl PressTracker {
    /// The button (or Space) went down at `now_ms`. `recording` says whether the mic is already recording,
    /// `may_start` whether the state machine accepts a new turn.
    pub fn press(&mut self, now_ms: f64, recording: bool, may_start: bool) -> MicAction {
        if recording {
            // Only a tap-started recording is stopped by pressing; a second finger during a hold is ignored.
            if std::mem::take(&mut self.latched) {
                self.pressed_at = None;
                return MicAction::StopRecording;
            }
            return MicAction::Nothing;
        }
        if !may_start {
            return MicAction::Nothing;
        }
        self.pressed_at = Some(now_ms);
        self.latched = false;
        MicAction::StartRecording
    }

    /// The button (or Space) came up at `now_ms`.
    pub fn release(&mut self, now_ms: f64, recording: bool) -> MicAction {
        let Some(pressed_at) = self.pressed_at.take() else {
            return MicAction::Nothing;
        };
        if !recording {
            return MicAction::Nothing;
        }
        if now_ms - pressed_at >= HOLD_MS {
            MicAction::StopRecording
        } else {
            self.latched = true;
            MicAction::Nothing
        }
    }

    /// Forgets everything, e.g. when the recording ended some other way (an error, "New conversation").
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_records_until_release() {
        let mut tracker = PressTracker::default();
        assert_eq!(tracker.press(1000.0, false, true), MicAction::StartRecording);
        assert_eq!(tracker.release(3000.0, true), MicAction::StopRecording);
        // The next press is a fresh turn, not a stop.
        assert_eq!(tracker.press(5000.0, false, true), MicAction::StartRecording);
    }

    #[test]
    fn a_tap_starts_and_the_next_tap_stops() {
        let mut tracker = PressTracker::default();
        assert_eq!(tracker.press(1000.0, false, true), MicAction::StartRecording);
        assert_eq!(tracker.release(1100.0, true), MicAction::Nothing, "a tap keeps recording");
        assert_eq!(tracker.press(4000.0, true, false), MicAction::StopRecording);
        assert_eq!(tracker.release(4080.0, false), MicAction::Nothing, "the stopping tap's release does nothing");
    }

    #[test]
    fn the_threshold_separates_taps_from_holds() {
        let mut tracker = PressTracker::default();
        tracker.press(0.0, false, true);
        assert_eq!(tracker.release(HOLD_MS - 1.0, true), MicAction::Nothing);
        let mut tracker = PressTracker::default();
        tracker.press(0.0, false, true);
        assert_eq!(tracker.release(HOLD_MS, true), MicAction::StopRecording);
    }

    #[test]
    fn pressing_while_a_turn_is_in_flight_does_nothing() {
        let mut tracker = PressTracker::default();
        assert_eq!(tracker.press(0.0, false, false), MicAction::Nothing);
        assert_eq!(tracker.release(2000.0, false), MicAction::Nothing);
    }

    #[test]
    fn a_second_press_during_a_hold_is_ignored() {
        let mut tracker = PressTracker::default();
        tracker.press(0.0, false, true);
        assert_eq!(tracker.press(500.0, true, false), MicAction::Nothing);
    }

    #[test]
    fn a_release_after_the_recording_ended_elsewhere_does_nothing() {
        let mut tracker = PressTracker::default();
        tracker.press(0.0, false, true);
        assert_eq!(tracker.release(2000.0, false), MicAction::Nothing);
        tracker.press(3000.0, false, true);
        tracker.reset();
        assert_eq!(tracker.release(5000.0, true), MicAction::Nothing);
    }
}
