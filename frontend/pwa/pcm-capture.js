// Parlance's capture worklet: runs on the audio thread and turns the microphone's samples (at the
// AudioContext's rate, usually 48 kHz) into 16 kHz mono signed 16-bit frames of 20 ms, posted to the page as
// Int16Arrays. 20 ms is fine enough for the hands-free voice detector's cuts; the page batches frames into
// ~100 ms WebSocket messages. Downsampling averages each output sample's input span (a box filter): enough to
// keep aliasing out of the speech band for speech-to-text, at almost no cost.

const OUTPUT_RATE = 16000;
const FRAME_SAMPLES = 320;

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / OUTPUT_RATE;
    this.position = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i += 1) {
      let mixed = 0;
      for (const channel of channels) mixed += channel[i];
      this.sum += mixed / channels.length;
      this.count += 1;
      this.position += 1;
      if (this.position >= this.ratio) {
        this.position -= this.ratio;
        const sample = this.sum / this.count;
        this.sum = 0;
        this.count = 0;
        this.frame[this.filled] = Math.max(-32768, Math.min(32767, Math.round(sample * 32768)));
        this.filled += 1;
        if (this.filled === FRAME_SAMPLES) {
          this.port.postMessage(this.frame, [this.frame.buffer]);
          this.frame = new Int16Array(FRAME_SAMPLES);
          this.filled = 0;
        }
      }
    }
    // Keep running while the page holds the node; it disconnects the node to stop.
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
