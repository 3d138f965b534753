//! Whisper's log-mel spectrogram. The filter bank is librosa's `mel(sr=16000, n_fft=400, n_mels=80)` with the
//! Slaney mel scale and Slaney ("area") normalisation, which is what the model was trained on; computed rather
//! than shipped as a blob. The spectrogram is candle's `pcm_to_mel` arithmetic, but computed only for the
//! frames the encoder will read (candle always adds 30 s of silence) and with a real FFT (candle's own FFT
//! took a third of a short clip's transcription).

use candle_core::Tensor;
use candle_transformers::models::whisper::{HOP_LENGTH, N_FFT};
use realfft::RealFftPlanner;

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

/// `frames` spectrogram frames (10 ms apart) of `samples`, silence after their end, as `[1, mel, frame]`,
/// scaled as Whisper expects: log10 power, floored 8 below the loudest value, then `/ 4 + 1`. `filters` is
/// the filter bank as `[bin, mel]` (see [`mel_filters`] and [`Tensor::t`]).
pub fn log_mel_spectrogram(samples: &[f32], filters: &Tensor, frames: usize) -> candle_core::Result<Tensor> {
    let bins = N_FFT / 2 + 1;
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let (mut input, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    let hann: Vec<f32> = (0..N_FFT).map(|i| 0.5 * (1.0 - (std::f32::consts::TAU * i as f32 / N_FFT as f32).cos())).collect();
    let mut power = Vec::with_capacity(frames * bins);
    for frame in 0..frames {
        let window = samples.get(frame * HOP_LENGTH..).unwrap_or_default();
        input.fill(0.0);
        for ((slot, sample), weight) in input.iter_mut().zip(window).zip(&hann) {
            *slot = sample * weight;
        }
        fft.process(&mut input, &mut spectrum).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        // The mirrored half of a full FFT folded in, as whisper.cpp and candle do: every bin but the first
        // and the last counts twice.
        power
            .extend(spectrum.iter().enumerate().map(|(bin, value)| value.norm_sqr() * if bin == 0 || bin == bins - 1 { 1.0 } else { 2.0 }));
    }
    // The filter bank as one matrix product: unoptimised builds run Rust loops ~30x slower than candle's.
    let power = Tensor::from_vec(power, (frames, bins), filters.device())?;
    let log_mel = (power.matmul(filters)?.maximum(1e-10)?.log()? / std::f64::consts::LN_10)?;
    let floor = f64::from(log_mel.max_all()?.to_scalar::<f32>()?) - 8.0;
    log_mel.maximum(floor)?.affine(0.25, 1.0)?.t()?.contiguous()?.unsqueeze(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spectrogram_matches_candles_on_the_frames_it_computes() {
        use candle_transformers::models::whisper::{Config, audio::pcm_to_mel};
        let config: Config = serde_json::from_value(serde_json::json!({
            "num_mel_bins": 80, "max_source_positions": 1500, "d_model": 384, "encoder_attention_heads": 6,
            "encoder_layers": 4, "vocab_size": 51864, "max_target_positions": 448, "decoder_attention_heads": 6,
            "decoder_layers": 4, "suppress_tokens": []
        }))
        .unwrap();
        let filters = whisper_filters();
        // 1.3 s of a gliding tone with harmonics and a quiet tail, so the floor and every band are exercised.
        let samples: Vec<f32> = (0..20_800)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let glide = (std::f32::consts::TAU * (200.0 + 900.0 * t) * t).sin();
                let level = if i < 16_000 { 0.3 } else { 0.002 };
                level * (glide + 0.3 * (3.0 * glide).sin())
            })
            .collect();
        let theirs = pcm_to_mel(&config, &samples, &filters);
        let their_frames = theirs.len() / 80;
        let frames = 160;
        let bank = Tensor::from_vec(filters.clone(), (80, 201), &candle_core::Device::Cpu).unwrap().t().unwrap();
        let ours: Vec<f32> = log_mel_spectrogram(&samples, &bank, frames).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut worst = 0f32;
        for band in 0..80 {
            for frame in 0..frames {
                worst = worst.max((ours[band * frames + frame] - theirs[band * their_frames + frame]).abs());
            }
        }
        assert!(worst < 1e-3, "largest difference {worst}");
        assert!(ours.iter().any(|v| *v > 1.0) && ours.iter().any(|v| *v < 0.5), "a flat spectrogram proves nothing");
    }

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
