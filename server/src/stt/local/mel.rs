//! Whisper's mel filter bank: librosa's `mel(sr=16000, n_fft=400, n_mels=80)` with the Slaney mel scale and
//! Slaney ("area") normalisation, which is what the model was trained on. Computed rather than shipped as a blob.

/// Filters for `n_mels` bands over the `n_fft / 2 + 1` FFT bins, row-major (`[mel][bin]`), as candle's
/// `pcm_to_mel` reads them.
pub fn mel_filters(sample_rate: f64, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let nyquist = sample_rate / 2.0;
    let bin_hz: Vec<f64> = (0..bins).map(|k| k as f64 * nyquist / (bins - 1) as f64).collect();
    let top_mel = hz_to_mel(nyquist);
    // n_mels + 2 edges: each triangle spans three consecutive edges.
    let edges: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(top_mel * i as f64 / (n_mels + 1) as f64)).collect();

    let mut filters = Vec::with_capacity(n_mels * bins);
    for m in 0..n_mels {
        let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
        // Slaney normalisation: every triangle has unit area in Hz, so wide high bands do not dominate.
        let height = 2.0 / (right - left);
        for &hz in &bin_hz {
            let rising = (hz - left) / (centre - left);
            let falling = (right - hz) / (right - centre);
            filters.push((rising.min(falling).max(0.0) * height) as f32);
        }
    }
    filters
}

/// Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    const LINEAR_STEP: f64 = 200.0 / 3.0;
    const BREAK_HZ: f64 = 1000.0;
    let break_mel = BREAK_HZ / LINEAR_STEP;
    let log_step = 6.4f64.ln() / 27.0;
    if hz >= BREAK_HZ { break_mel + (hz / BREAK_HZ).ln() / log_step } else { hz / LINEAR_STEP }
}

fn mel_to_hz(mel: f64) -> f64 {
    const LINEAR_STEP: f64 = 200.0 / 3.0;
    const BREAK_HZ: f64 = 1000.0;
    let break_mel = BREAK_HZ / LINEAR_STEP;
    let log_step = 6.4f64.ln() / 27.0;
    if mel >= break_mel { BREAK_HZ * ((mel - break_mel) * log_step).exp() } else { mel * LINEAR_STEP }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINS: usize = 201;
    const BIN_HZ: f64 = 40.0;

    fn whisper_filters() -> Vec<f32> {
        mel_filters(16000.0, 400, 80)
    }

    #[test]
    fn the_scale_is_linear_below_1_khz_and_logarithmic_above() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        // 6.4 kHz is one log step of 27 mels above the break.
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for hz in [0.0, 37.0, 999.0, 1000.0, 2500.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz} Hz does not round-trip");
        }
    }

    #[test]
    fn eighty_triangles_peak_at_their_centres() {
        let filters = whisper_filters();
        assert_eq!(filters.len(), 80 * BINS);
        assert!(filters.iter().all(|w| *w >= 0.0 && w.is_finite()));
        let top_mel = hz_to_mel(8000.0);
        for (m, row) in filters.chunks(BINS).enumerate() {
            let centre_hz = mel_to_hz(top_mel * (m + 1) as f64 / 81.0);
            let peak = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k).unwrap();
            assert!(
                (peak as f64 * BIN_HZ - centre_hz).abs() <= BIN_HZ,
                "filter {m} peaks at bin {peak} ({} Hz), its centre is {centre_hz:.1} Hz",
                peak as f64 * BIN_HZ
            );
            assert!(row.iter().any(|w| *w > 0.0), "filter {m} is empty");
        }
        // The last edge is the Nyquist frequency: the top filter reaches up to, and not beyond, bin 200.
        assert!(filters[80 * BINS - 1] < 1e-6);
        assert!(filters[79 * BINS + 199] > 0.0);
    }

    #[test]
    fn wide_filters_have_unit_area_in_hz() {
        // Only bands several 40 Hz bins wide (from filter 45, about 160 Hz) are sampled finely enough for the
        // sum to equal the integral; narrower ones are off by up to 7% depending on where the bins fall.
        let filters = whisper_filters();
        for (m, row) in filters.chunks(BINS).enumerate().skip(45) {
            let area: f64 = row.iter().map(|w| f64::from(*w) * BIN_HZ).sum();
            assert!((area - 1.0).abs() < 0.02, "filter {m} has area {area}");
        }
    }

    #[test]
    fn known_values_derived_by_hand() {
        let filters = whisper_filters();
        // Edges are evenly spaced in mel: step = hz_to_mel(8000) / 81, below 1 kHz 200/3 Hz per mel.
        let step_hz = (15.0 + 8f64.ln() / (6.4f64.ln() / 27.0)) / 81.0 * 200.0 / 3.0; // ≈ 37.24 Hz
        // Filter 0 spans 0..2*step Hz, peak 2/(2*step); at 40 Hz it is on the falling side.
        let expected = (2.0 * step_hz - 40.0) / step_hz * (2.0 / (2.0 * step_hz));
        assert!((f64::from(filters[1]) - expected).abs() < 1e-6, "{} vs {expected}", filters[1]);
        assert_eq!(filters[0], 0.0, "0 Hz is the left edge of the first filter");
        // Filter 1 spans step..3*step: 40 Hz is just past its left edge, 80 Hz just past its centre.
        let rising = (40.0 - step_hz) / step_hz * (1.0 / step_hz);
        let falling = (3.0 * step_hz - 80.0) / step_hz * (1.0 / step_hz);
        assert!((f64::from(filters[BINS + 1]) - rising).abs() < 1e-6);
        assert!((f64::from(filters[BINS + 2]) - falling).abs() < 1e-6);
    }
}
