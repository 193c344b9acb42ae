// What the page sends: one video track (the camera, a shared screen, or the screen with the
// camera in a corner, composed on a canvas) and one audio track (the microphone, optionally
// mixed with the shared screen's audio, each with its own volume and mute), plus the
// microphone's level. Switching any of it keeps the same output tracks' senders fed
// (`onTrack` hands the page a new video track to `replaceTrack` with). Knows nothing of WHIP.

const FPS = 30;
/** Below this RMS level the microphone counts as silent; at this peak, as clipping. */
const SILENT_RMS = 0.003;
const CLIPPING_PEAK = 0.99;
/** How long silence lasts before it is worth a warning. */
const SILENT_MS = 5000;

/** Where the camera goes over the screen: corner and a fraction of the picture's width. */
export function overlayRect(width, height, corner, size, cameraAspect) {
  const w = Math.round(width * size);
  const h = Math.round(w / (cameraAspect || 16 / 9));
  const margin = Math.round(width * 0.02);
  const x = corner.endsWith('r') ? width - w - margin : margin;
  const y = corner.startsWith('b') ? height - h - margin : margin;
  return { x, y, w, h };
}

export class Studio {
  constructor() {
    this.source = 'camera';
    this.corner = 'br';
    this.size = 0.3;
    this.width = 1280;
    this.height = 720;
    this.camera = null;
    this.screen = null;
    this.canvas = null;
    this.drawTimer = 0;
    this.audio = null;
    this.silentSince = 0;
    this.level = { rms: 0, peak: 0 };
    /** Called with the new video track whenever the picture's source changes. */
    this.onTrack = () => {};
    /** Called when the shared screen ends by itself (the browser's "Stop sharing"). */
    this.onScreenEnded = () => {};
  }

  /** The camera and microphone as getUserMedia opened them (the page owns the constraints). */
  setCamera(stream) {
    this.camera?.getTracks().forEach((t) => t.stop());
    this.camera = stream;
    const [track] = stream.getVideoTracks();
    const size = track?.getSettings?.() || {};
    if (size.width && size.height) { this.width = size.width; this.height = size.height; }
    this.cameraVideo = playing(stream);
    this.mixMicrophone(stream);
    return this.refresh();
  }

  /** Asks for a screen, window or tab (with its audio when the browser offers it). */
  async shareScreen() {
    if (this.screen) return;
    const screen = await navigator.mediaDevices.getDisplayMedia({
      video: { width: { ideal: this.width }, height: { ideal: this.height }, frameRate: { ideal: FPS } },
      audio: true,
    });
    this.screen = screen;
    this.screenVideo = playing(screen);
    screen.getVideoTracks()[0]?.addEventListener('ended', () => {
      this.stopScreen();
      this.onScreenEnded();
    });
    this.mixTab(screen);
  }

  stopScreen() {
    this.screen?.getTracks().forEach((t) => t.stop());
    this.screen = null;
    this.screenVideo = null;
    this.audio?.tab?.source.disconnect();
    if (this.audio) this.audio.tab = null;
  }

  /** `camera`, `screen` or `overlay`; asks for the screen when it is needed and not shared yet. */
  async setSource(source) {
    if (source !== 'camera') await this.shareScreen();
    this.source = source;
    if (source === 'camera') this.stopScreen();
    return this.refresh();
  }

  setOverlay(corner, size) {
    this.corner = corner;
    this.size = size;
  }

  /** The stream to send: the current picture and the mixed audio. */
  output() {
    const tracks = [this.videoTrack(), this.audioTrack()].filter(Boolean);
    return new MediaStream(tracks);
  }

  videoTrack() {
    if (this.source === 'camera') return this.camera?.getVideoTracks()[0] || null;
    if (this.source === 'screen') return this.screen?.getVideoTracks()[0] || null;
    return this.composed();
  }

  audioTrack() {
    return this.audio?.output.stream.getAudioTracks()[0] || this.camera?.getAudioTracks()[0] || null;
  }

  refresh() {
    if (this.source !== 'overlay') this.stopComposing();
    const track = this.videoTrack();
    if (track) this.onTrack(track);
    return track;
  }

  // ---- the overlay: a canvas drawn 30 times a second ----
  composed() {
    if (!this.canvas) {
      this.canvas = document.createElement('canvas');
      this.canvasTrack = null;
    }
    this.canvas.width = this.width;
    this.canvas.height = this.height;
    if (!this.canvasTrack || this.canvasTrack.readyState === 'ended') {
      // Frames on demand, one per drawing: a capture sampling at its own 30 Hz would beat
      // against the drawing timer and skip frames.
      this.canvasTrack = this.canvas.captureStream(0).getVideoTracks()[0];
    }
    if (!this.drawTimer) {
      // A timer, not requestAnimationFrame: the stream must go on while the tab is hidden.
      this.drawTimer = setInterval(() => this.draw(), 1000 / FPS);
      this.draw();
    }
    return this.canvasTrack;
  }

  stopComposing() {
    clearInterval(this.drawTimer);
    this.drawTimer = 0;
  }

  draw() {
    // Opaque: nothing under the picture to blend with, which spares a pass per frame.
    this.ctx ||= this.canvas.getContext('2d', { alpha: false });
    const ctx = this.ctx;
    const { width, height } = this.canvas;
    const screen = this.screenVideo;
    const scale = screen?.videoWidth ? Math.min(width / screen.videoWidth, height / screen.videoHeight) : 0;
    const [w, h] = [screen?.videoWidth * scale || 0, screen?.videoHeight * scale || 0];
    if (w < width || h < height) {
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, width, height);
    }
    if (scale) ctx.drawImage(screen, (width - w) / 2, (height - h) / 2, w, h);
    const camera = this.cameraVideo;
    if (camera?.videoWidth && this.camera?.getVideoTracks()[0]?.enabled !== false) {
      const r = overlayRect(width, height, this.corner, this.size, camera.videoWidth / camera.videoHeight);
      ctx.drawImage(camera, r.x, r.y, r.w, r.h);
    }
    this.canvasTrack?.requestFrame?.();
  }

  // ---- audio: microphone and shared audio mixed, each with a gain; a meter on the microphone ----
  context() {
    if (!this.audio) {
      const ctx = new AudioContext();
      const output = ctx.createMediaStreamDestination();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 2048;
      this.audio = { ctx, output, analyser, mic: null, tab: null, samples: new Float32Array(analyser.fftSize) };
      // Browsers start an AudioContext suspended until the person interacts with the page.
      const resume = () => { if (ctx.state === 'suspended') ctx.resume(); };
      for (const event of ['pointerdown', 'keydown']) document.addEventListener(event, resume, { capture: true });
      resume();
    }
    return this.audio;
  }

  mixMicrophone(stream) {
    const [track] = stream.getAudioTracks();
    if (!track) return;
    const audio = this.context();
    audio.mic?.source.disconnect();
    const source = audio.ctx.createMediaStreamSource(new MediaStream([track]));
    const gain = audio.mic?.gain || audio.ctx.createGain();
    source.connect(audio.analyser);
    source.connect(gain).connect(audio.output);
    audio.mic = { source, gain, muted: audio.mic?.muted || false, volume: audio.mic?.volume ?? 1 };
    this.applyGain('mic');
  }

  mixTab(stream) {
    const [track] = stream.getAudioTracks();
    if (!track) return;
    const audio = this.context();
    const source = audio.ctx.createMediaStreamSource(new MediaStream([track]));
    const gain = audio.tab?.gain || audio.ctx.createGain();
    source.connect(gain).connect(audio.output);
    audio.tab = { source, gain, muted: audio.tab?.muted || false, volume: audio.tab?.volume ?? 1 };
    this.applyGain('tab');
  }

  hasTabAudio() {
    return Boolean(this.audio?.tab);
  }

  /** `which` is `mic` or `tab`. */
  setVolume(which, volume) {
    const input = this.audio?.[which];
    if (!input) return;
    input.volume = volume;
    this.applyGain(which);
  }

  setMuted(which, muted) {
    const input = this.audio?.[which];
    if (!input) return;
    input.muted = muted;
    this.applyGain(which);
  }

  applyGain(which) {
    const input = this.audio?.[which];
    if (input) input.gain.gain.value = input.muted ? 0 : input.volume;
  }

  /**
   * The microphone's level now (RMS and peak, 0..1, before its volume) and what is worth
   * saying about it: `silent` after 5 s under the silence level, `clipping` at full scale,
   * `null` otherwise or while the browser keeps audio suspended.
   */
  meter(now = performance.now()) {
    const audio = this.audio;
    if (!audio?.mic || audio.ctx.state !== 'running') return { rms: 0, peak: 0, warning: null };
    audio.analyser.getFloatTimeDomainData(audio.samples);
    let sum = 0;
    let peak = 0;
    for (const s of audio.samples) { sum += s * s; peak = Math.max(peak, Math.abs(s)); }
    const rms = Math.sqrt(sum / audio.samples.length);
    if (rms >= SILENT_RMS) this.silentSince = 0;
    else if (!this.silentSince) this.silentSince = now;
    let warning = null;
    if (peak >= CLIPPING_PEAK) warning = 'clipping';
    else if (this.silentSince && now - this.silentSince >= SILENT_MS) warning = 'silent';
    this.level = { rms, peak };
    return { rms, peak, warning };
  }
}

/** A playing, detached video element showing `stream` (what the canvas draws from). */
function playing(stream) {
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream(stream.getVideoTracks());
  video.play().catch(() => {});
  return video;
}
