// The page: devices, preview, destination, Go Live / Stop, live status. Talks to the relay that
// serves it (same origin): /api/config, /whip/{stream}.
import { WhipPublisher, WhipError, CodecError } from './whip.js';

const $ = (id) => document.getElementById(id);
const RESOLUTIONS = { 360: [640, 360], 720: [1280, 720], 1080: [1920, 1080] };
const SETTINGS_KEY = 'ivs-relay.settings';
const SECRETS_KEY = 'ivs-relay.secrets';

const state = { stream: null, publisher: null, config: {}, liveSince: 0, timer: 0, lastBytes: 0, lastTime: 0, history: [], mutedAudio: false, mutedVideo: false };

// ---- messages ----
function say(text, kind = 'error') {
  const el = $('message');
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

function explain(error) {
  if (error instanceof CodecError) return error.message;
  if (error instanceof WhipError) {
    switch (error.status) {
      case 0: return 'The relay is unreachable. Check that it is running and that this page\'s address is right.';
      case 401: return 'The relay refused the access token (401). Check the token and try again.';
      case 403: return `The destination was refused: ${error.reason}`;
      case 409: return `This stream name is already live: ${error.reason}`;
      case 503: return 'The relay is busy (at its session limit, or restarting). Try again in a moment.';
      case 400: case 406: return `The relay could not accept this stream: ${error.reason}`;
      default: return `The relay answered ${error.status}: ${error.reason}`;
    }
  }
  switch (error?.name) {
    case 'NotAllowedError': return 'Camera or microphone permission was denied. Allow access in the browser\'s site settings, then try again.';
    case 'NotFoundError': return 'No camera or microphone was found. Connect one and reload the page.';
    case 'NotReadableError': return 'The camera or microphone is in use by another application.';
    case 'OverconstrainedError': return 'The camera cannot deliver this resolution. Pick a lower one.';
    default: return `Something went wrong: ${error?.message || error}`;
  }
}

// ---- settings ----
function load(key) {
  try { return JSON.parse(localStorage.getItem(key) || '{}'); } catch { return {}; }
}

function saveSettings() {
  const s = {
    camera: $('camera').value, microphone: $('microphone').value, resolution: $('resolution').value,
    bitrate: $('bitrate').value, stream: $('stream').value, ivsServer: $('ivs-server').value,
    dest: document.querySelector('input[name=dest]:checked')?.value, remember: $('remember').checked,
  };
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
  if ($('remember').checked) {
    localStorage.setItem(SECRETS_KEY, JSON.stringify({ token: $('token').value, ivsKey: $('ivs-key').value, rtmpUrl: $('rtmp-url').value }));
  } else {
    localStorage.removeItem(SECRETS_KEY);
  }
}

function restoreSettings() {
  const s = load(SETTINGS_KEY);
  const secrets = load(SECRETS_KEY);
  for (const [id, value] of [['resolution', s.resolution], ['bitrate', s.bitrate], ['stream', s.stream], ['ivs-server', s.ivsServer], ['token', secrets.token], ['ivs-key', secrets.ivsKey], ['rtmp-url', secrets.rtmpUrl]]) {
    if (value) $(id).value = value;
  }
  $('remember').checked = Boolean(s.remember);
  const params = new URLSearchParams(location.search);
  if (params.get('stream')) $('stream').value = params.get('stream');
  if (params.get('resolution')) $('resolution').value = params.get('resolution');
  if (s.dest) document.querySelector(`input[name=dest][value="${s.dest}"]`)?.click();
  return s;
}

function showDestinationFields() {
  const dest = document.querySelector('input[name=dest]:checked')?.value;
  $('dest-ivs').hidden = dest !== 'ivs';
  $('dest-rtmp').hidden = dest !== 'rtmp';
}

/** The X-RTMP-Destination to send, '' for the relay's default. */
function chosenDestination() {
  const dest = document.querySelector('input[name=dest]:checked')?.value;
  if (dest === 'ivs') {
    const server = $('ivs-server').value.trim().replace(/^rtmps?:\/\//, '').replace(/[:/].*$/, '');
    const key = $('ivs-key').value.trim();
    if (!server || !key) throw new Error('Enter the IVS ingest server and stream key, or pick the relay\'s default destination.');
    return `rtmps://${server}:443/app/${key}`;
  }
  if (dest === 'rtmp') {
    const url = $('rtmp-url').value.trim();
    if (!/^rtmps?:\/\//.test(url)) throw new Error('The destination must be an rtmp:// or rtmps:// URL.');
    return url;
  }
  return '';
}

// ---- devices ----
function constraints() {
  const [width, height] = RESOLUTIONS[$('resolution').value] || RESOLUTIONS[720];
  const camera = $('camera').value;
  const microphone = $('microphone').value;
  return {
    video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 }, ...(camera ? { deviceId: { exact: camera } } : {}) },
    audio: { echoCancellation: true, noiseSuppression: true, ...(microphone ? { deviceId: { exact: microphone } } : {}) },
  };
}

async function listDevices(saved = {}) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [id, kind, noun] of [['camera', 'videoinput', 'Camera'], ['microphone', 'audioinput', 'Microphone']]) {
    const select = $(id);
    const current = select.value || saved[id];
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => new Option(d.label || `${noun} ${i + 1}`, d.deviceId)));
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }
}

async function openDevices() {
  const stream = await navigator.mediaDevices.getUserMedia(constraints());
  state.stream?.getTracks().forEach((t) => t.stop());
  state.stream = stream;
  $('preview').srcObject = stream;
  stream.getAudioTracks().forEach((t) => { t.enabled = !state.mutedAudio; });
  stream.getVideoTracks().forEach((t) => { t.enabled = !state.mutedVideo; });
  return stream;
}

/** A new camera, microphone or resolution: re-open, and swap tracks in place if live. */
async function devicesChanged() {
  saveSettings();
  try {
    const stream = await openDevices();
    if (state.publisher) {
      for (const track of stream.getTracks()) await state.publisher.replaceTrack(track);
      await state.publisher.keepResolution(Number($('bitrate').value) * 1000);
    }
    say('');
  } catch (e) {
    say(explain(e));
  }
}

// ---- live ----
function setState(name) {
  $('st-state').textContent = name;
  const badge = $('badge');
  badge.dataset.state = name;
  badge.textContent = { live: 'LIVE', connecting: 'CONNECTING', reconnecting: 'RECONNECTING' }[name] || 'OFFLINE';
  const busy = name === 'connecting' || name === 'live' || name === 'reconnecting';
  $('golive').disabled = busy;
  $('stop').disabled = !busy;
  document.title = name === 'live' ? '● LIVE — ivs-relay' : 'Go live — ivs-relay';
}

async function goLive() {
  say('');
  if (!$('settings').reportValidity()) return;
  let destination;
  try { destination = chosenDestination(); } catch (e) { say(e.message); return; }
  saveSettings();
  setState('connecting');
  try {
    const stream = state.stream || await openDevices();
    const endpoint = new URL(`/whip/${encodeURIComponent($('stream').value)}`, location.href).toString();
    const publisher = new WhipPublisher(endpoint, {
      token: $('token').value.trim(),
      destination,
      iceServers: (state.config.ice_servers || []).map((urls) => ({ urls })),
    });
    state.publisher = publisher;
    await publisher.publish(stream, { maxBitrate: Number($('bitrate').value) * 1000, maxFramerate: 30 });
    publisher.pc.addEventListener('connectionstatechange', () => {
      if (publisher.pc?.connectionState === 'failed') {
        say('The connection to the relay was lost. Press Go Live to start again.');
        stop();
      }
    });
    state.liveSince = 0;
    state.history = [];
    state.lastBytes = 0;
    state.timer = setInterval(refresh, 1000);
  } catch (e) {
    state.publisher?.close();
    state.publisher = null;
    setState('idle');
    say(explain(e));
  }
}

async function stop() {
  clearInterval(state.timer);
  const publisher = state.publisher;
  state.publisher = null;
  setState('ended');
  await publisher?.stop();
}

function formatRate(bps) {
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

function formatElapsed(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

async function refresh() {
  const publisher = state.publisher;
  if (!publisher?.pc) return;
  const stats = await publisher.pc.getStats();
  stats.forEach((report) => {
    if (report.type === 'outbound-rtp' && report.kind === 'video') {
      if (state.lastTime) {
        const bps = (8 * (report.bytesSent - state.lastBytes) * 1000) / (report.timestamp - state.lastTime);
        $('st-bitrate').textContent = formatRate(bps);
        state.history.push(bps);
        if (state.history.length > 60) state.history.shift();
      }
      state.lastBytes = report.bytesSent;
      state.lastTime = report.timestamp;
      $('st-fps').textContent = report.framesPerSecond ? `${Math.round(report.framesPerSecond)} fps` : '–';
      if (report.frameWidth) $('st-resolution').textContent = `${report.frameWidth}×${report.frameHeight}`;
    }
    if (report.type === 'remote-inbound-rtp' && report.kind === 'video') {
      if (report.roundTripTime !== undefined) $('st-rtt').textContent = `${Math.round(report.roundTripTime * 1000)} ms`;
      if (report.fractionLost !== undefined) $('st-loss').textContent = `${(report.fractionLost * 100).toFixed(1)} %`;
    }
  });
  drawSparkline();
  const relay = await publisher.status().catch(() => null);
  if (state.publisher !== publisher) return;
  if (!relay) {
    say('The relay no longer knows this session (connection lost). Press Go Live to start again.');
    await stop();
    return;
  }
  setState(relay.state);
  if (relay.state === 'live' && !state.liveSince) state.liveSince = Date.now();
  $('st-elapsed').textContent = state.liveSince ? formatElapsed(Date.now() - state.liveSince) : '–';
  $('st-ingest').textContent = `${relay.ingest} (${relay.destination})`;
  $('st-reconnects').textContent = String(relay.reconnects);
  if (relay.state === 'reconnecting') say(`The ingest is unreachable; the relay keeps retrying. Last error: ${relay.last_error}`, 'info');
  else if (relay.state === 'live' && $('message').dataset.kind === 'info') say('');
}

function drawSparkline() {
  const canvas = $('sparkline');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const data = state.history;
  if (data.length < 2) return;
  const max = Math.max(...data, 1);
  ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue('--accent') || '#0b5fd6';
  ctx.lineWidth = 2;
  ctx.beginPath();
  data.forEach((v, i) => {
    const x = (i / 59) * width;
    const y = height - (v / max) * (height - 4) - 2;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function toggleMute(kind) {
  const key = kind === 'audio' ? 'mutedAudio' : 'mutedVideo';
  state[key] = !state[key];
  const tracks = kind === 'audio' ? state.stream?.getAudioTracks() : state.stream?.getVideoTracks();
  tracks?.forEach((t) => { t.enabled = !state[key]; });
  const button = $(kind === 'audio' ? 'mute-audio' : 'mute-video');
  button.setAttribute('aria-pressed', String(state[key]));
  button.textContent = kind === 'audio' ? (state[key] ? 'Unmute microphone' : 'Mute microphone') : (state[key] ? 'Turn camera on' : 'Turn camera off');
}

// ---- watch: what viewers see ----
async function startPlayer(url) {
  $('watch').hidden = false;
  const video = $('player');
  let hls = null;
  // hls.js wherever Media Source Extensions work: it knows each frame's program date-time, which
  // the delay needs. Native HLS (iOS Safari) only as the fallback.
  const { default: Hls } = await import('./vendor/hls.light.min.mjs');
  if (!Hls.isSupported()) {
    if (!video.canPlayType('application/vnd.apple.mpegurl')) { $('delay').textContent = 'this browser cannot play HLS'; return; }
    video.src = url;
  } else {
    hls = new Hls({ liveSyncDurationCount: 2, lowLatencyMode: true });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) { $('delay').textContent = 'not playing (the channel may be offline); retrying'; setTimeout(() => hls.loadSource(url), 3000); }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }
  video.play().catch(() => {});
  setInterval(() => {
    // With EXT-X-PROGRAM-DATE-TIME (IVS sends it), the frame on screen carries its capture
    // time: now minus that is the delay from camera to viewer.
    const shown = hls?.playingDate;
    if (shown && !video.paused) $('delay').textContent = `${((Date.now() - shown.getTime()) / 1000).toFixed(1)} s`;
    else if (hls?.latency) $('delay').textContent = `${hls.latency.toFixed(1)} s behind live`;
  }, 1000);
}

// ---- start ----
async function loadConfig() {
  try {
    const response = await fetch('/api/config', { cache: 'no-store' });
    state.config = await response.json();
  } catch {
    say('The relay is unreachable. Check that it is running and reload the page.');
    return;
  }
  const c = state.config;
  $('default-dest').textContent = c.default_destination ? `(${c.default_destination})` : '(none set)';
  if (!c.client_destination_allowed) {
    document.querySelectorAll('input[name=dest]:not([value=default])').forEach((r) => { r.disabled = true; });
    $('dest-note').hidden = false;
  }
  $('token').required = Boolean(c.token_required);
  const playback = new URLSearchParams(location.search).get('playback') || c.playback_url;
  if (playback) startPlayer(playback).catch((e) => { $('delay').textContent = `player failed: ${e.message}`; });
}

async function main() {
  setState('idle');
  document.querySelectorAll('input[name=dest]').forEach((r) => r.addEventListener('change', () => { showDestinationFields(); saveSettings(); }));
  const saved = restoreSettings();
  showDestinationFields();
  await loadConfig();
  if (!state.config.client_destination_allowed) document.querySelector('input[name=dest][value=default]').click();
  $('golive').addEventListener('click', goLive);
  $('stop').addEventListener('click', stop);
  $('mute-audio').addEventListener('click', () => toggleMute('audio'));
  $('mute-video').addEventListener('click', () => toggleMute('video'));
  for (const id of ['camera', 'microphone', 'resolution']) $(id).addEventListener('change', devicesChanged);
  $('bitrate').addEventListener('change', () => { saveSettings(); state.publisher?.keepResolution(Number($('bitrate').value) * 1000); });
  for (const id of ['stream', 'ivs-server', 'remember', 'token', 'ivs-key', 'rtmp-url']) $(id).addEventListener('change', saveSettings);
  window.addEventListener('pagehide', () => { state.publisher?.stop(); });
  navigator.mediaDevices?.addEventListener?.('devicechange', () => listDevices());
  if (!navigator.mediaDevices?.getUserMedia) {
    say('This page needs a secure connection (https:// or localhost) to use the camera.');
    return;
  }
  try {
    await openDevices();
    await listDevices(saved);
  } catch (e) {
    say(explain(e));
    await listDevices(saved).catch(() => {});
  }
}

main();
