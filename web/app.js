// The page: devices, preview, destinations, Go Live / Stop, live status. Talks to the relay that
// serves it (same origin): /api/config, /whip/{stream}, and while live the session's own URL
// (its status, its destinations).
import { WhipPublisher, WhipError, CodecError } from './whip.js';
import { Studio } from './studio.js';

const $ = (id) => document.getElementById(id);
const RESOLUTIONS = { 360: [640, 360], 720: [1280, 720], 1080: [1920, 1080] };
const SETTINGS_KEY = 'ivs-relay.settings';
const SECRETS_KEY = 'ivs-relay.secrets';

const state = {
  stream: null, publisher: null, config: {}, liveSince: 0, timer: 0, lastBytes: 0, lastTime: 0, history: [], mutedAudio: false, mutedVideo: false,
  /** The page's own destinations: `url` (holds the key: never shown), `host`, and the relay's `id` once live. */
  destinations: [],
  /** The relay's view of every destination while live (its own too), newest status. */
  reports: [],
  /** What is sent: the picture's source and the audio mix. */
  studio: new Studio(),
  /** Stop was pressed: nothing reconnects. */
  stopped: true,
  /** Tries since the connection was lost (0 while live), and new sessions made since Go Live. */
  attempt: 0,
  reconnects: 0,
};

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
    bitrate: $('bitrate').value, stream: $('stream').value, preset: $('dest-preset').value, remember: $('remember').checked,
    corner: $('overlay-corner').value, size: $('overlay-size').value,
  };
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
  if ($('remember').checked) {
    localStorage.setItem(SECRETS_KEY, JSON.stringify({ token: $('token').value, destinations: state.destinations.map((d) => d.url) }));
  } else {
    localStorage.removeItem(SECRETS_KEY);
  }
}

function restoreSettings() {
  const s = load(SETTINGS_KEY);
  const secrets = load(SECRETS_KEY);
  for (const [id, value] of [['resolution', s.resolution], ['bitrate', s.bitrate], ['stream', s.stream], ['dest-preset', s.preset], ['overlay-corner', s.corner], ['overlay-size', s.size], ['token', secrets.token]]) {
    if (value) $(id).value = value;
  }
  state.destinations = (secrets.destinations || []).filter((url) => typeof url === 'string').map((url) => ({ url, host: hostOf(url), id: null }));
  $('remember').checked = Boolean(s.remember);
  const params = new URLSearchParams(location.search);
  if (params.get('stream')) $('stream').value = params.get('stream');
  if (params.get('resolution')) $('resolution').value = params.get('resolution');
  return s;
}

// ---- destinations ----
/** Ingest presets: the URL is `server` + `/` + key (IVS: its ingest host). */
const PRESETS = {
  ivs: { label: 'IVS ingest server', server: '', placeholder: 'abcdef.global-contribute.live-video.net', key: 'sk_us-west-2_…' },
  twitch: { label: 'Twitch ingest server', server: 'rtmps://live.twitch.tv:443/app', key: 'live_…' },
  youtube: { label: 'YouTube ingest server', server: 'rtmps://a.rtmps.youtube.com:443/live2', key: 'xxxx-xxxx-xxxx-xxxx-xxxx' },
  custom: { label: 'RTMP(S) URL with stream key', server: '', placeholder: 'rtmps://host:443/app/streamkey', key: null },
};

/** `host:port` of an rtmp(s):// URL: all the page ever shows of a destination. */
function hostOf(url) {
  try {
    const u = new URL(url);
    return `${u.hostname.replace(/^\[|\]$/g, '')}:${u.port || (u.protocol === 'rtmps:' ? 443 : 1935)}`;
  } catch {
    return 'invalid URL';
  }
}

function showPreset() {
  const preset = PRESETS[$('dest-preset').value] || PRESETS.custom;
  $('dest-server-label').textContent = preset.label;
  $('dest-server').placeholder = preset.placeholder || preset.server;
  $('dest-server').type = preset.key === null ? 'password' : 'text';
  $('dest-server').value = preset.server;
  $('dest-key').value = '';
  $('dest-key').placeholder = preset.key || '';
  $('dest-key-field').hidden = preset.key === null;
}

/** The URL the add form describes, or an Error saying what is missing. */
function destinationFromForm() {
  const kind = $('dest-preset').value;
  const server = $('dest-server').value.trim();
  const key = $('dest-key').value.trim();
  let url;
  if (kind === 'custom') {
    url = server;
  } else if (kind === 'ivs') {
    const host = server.replace(/^rtmps?:\/\//, '').replace(/[:/].*$/, '');
    if (!host || !key) throw new Error('Enter the IVS ingest server and the stream key.');
    url = `rtmps://${host}:443/app/${key}`;
  } else {
    if (!key) throw new Error('Enter the stream key.');
    url = `${server.replace(/\/+$/, '')}/${key}`;
  }
  if (!/^rtmps?:\/\/[^/]+\/.+\/.+/.test(url)) throw new Error('A destination is an rtmp:// or rtmps:// URL of the form rtmps://host/app/streamkey.');
  if (url.includes(',')) throw new Error('A destination URL cannot hold a comma.');
  return url;
}

async function addDestination() {
  let url;
  try { url = destinationFromForm(); } catch (e) { say(e.message); return; }
  const max = state.config.max_destinations || 5;
  const count = state.publisher ? state.reports.length : (state.config.destinations || []).length + state.destinations.length;
  if (count >= max) { say(`This relay publishes a stream to at most ${max} destinations: remove one first.`); return; }
  const entry = { url, host: hostOf(url), id: null };
  if (state.publisher) {
    try {
      const report = await state.publisher.addDestination(url);
      entry.id = report.id;
      state.reports.push(report);
    } catch (e) {
      say(e instanceof WhipError && e.status ? `The relay did not add this destination: ${e.reason}` : explain(e));
      return;
    }
  }
  state.destinations.push(entry);
  $('dest-key').value = '';
  if ($('dest-preset').value === 'custom') $('dest-server').value = '';
  say('');
  saveSettings();
  renderDestinations();
}

async function removeDestination(entry) {
  if (state.publisher && entry.id) {
    try {
      await state.publisher.removeDestination(entry.id);
    } catch (e) {
      if (!(e instanceof WhipError && e.status === 404)) { say(explain(e)); return; }
    }
    state.reports = state.reports.filter((r) => r.id !== entry.id);
  }
  state.destinations = state.destinations.filter((d) => d !== entry);
  saveSettings();
  renderDestinations();
}

/** One line per destination: the relay's own, then the page's; while live, each one's state. */
function renderDestinations() {
  const live = Boolean(state.publisher);
  const rows = [];
  const ownReports = state.reports.filter((r) => r.origin === 'relay');
  const relayHosts = live && ownReports.length ? ownReports.map((r) => r.host) : (state.config.destinations || []);
  relayHosts.forEach((host, i) => rows.push({ host, note: 'relay\'s own', report: live ? ownReports[i] : null }));
  for (const entry of state.destinations) {
    rows.push({ host: entry.host, note: null, report: live ? state.reports.find((r) => r.id === entry.id) : null, entry });
  }
  $('dest-list').replaceChildren(...rows.map((row) => {
    const li = document.createElement('li');
    const host = document.createElement('span');
    host.className = 'host';
    host.textContent = row.host;
    li.append(host);
    if (row.note) {
      const note = document.createElement('span');
      note.className = 'muted';
      note.textContent = row.note;
      li.append(note);
    }
    if (row.report) {
      const badge = document.createElement('span');
      badge.className = 'dest-state';
      badge.dataset.state = row.report.state;
      badge.textContent = row.report.state + (row.report.reconnects ? ` (${row.report.reconnects} reconnects)` : '');
      li.append(badge);
    }
    if (row.entry) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${row.host}`);
      remove.addEventListener('click', () => removeDestination(row.entry));
      li.append(remove);
    }
    if (row.report?.last_error && row.report.state !== 'live') {
      const reason = document.createElement('span');
      reason.className = 'reason';
      reason.textContent = row.report.last_error;
      li.append(reason);
    }
    return li;
  }));
  if (!rows.length) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'No destination yet: add one below.';
    $('dest-list').replaceChildren(li);
  }
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
  state.stream = stream;
  stream.getVideoTracks().forEach((t) => { t.enabled = !state.mutedVideo; });
  state.studio.setCamera(stream);
  return stream;
}

/** A new camera, microphone or resolution: re-open; the studio swaps the tracks in place if live. */
async function devicesChanged() {
  saveSettings();
  try {
    await openDevices();
    await state.publisher?.keepResolution(Number($('bitrate').value) * 1000);
    say('');
  } catch (e) {
    say(explain(e));
  }
}

/** The picture's source changed in the studio: preview it, and send it if live (same session). */
function showTrack(track) {
  $('preview').srcObject = new MediaStream([track]);
  state.publisher?.replaceTrack(track).catch((e) => say(explain(e)));
}

async function sourceChanged() {
  const wanted = $('source').value;
  $('overlay-options').hidden = wanted !== 'overlay';
  try {
    await state.studio.setSource(wanted);
    say('');
  } catch (e) {
    // Sharing was cancelled or refused: stay on what was sent before.
    $('source').value = state.studio.source;
    $('overlay-options').hidden = state.studio.source !== 'overlay';
    say(e?.name === 'NotAllowedError' ? 'Screen sharing was cancelled or not allowed; the stream stays as it was.' : explain(e));
  }
  $('tab-audio').hidden = !state.studio.hasTabAudio();
}

function overlayChanged() {
  state.studio.setOverlay($('overlay-corner').value, Number($('overlay-size').value));
  saveSettings();
}

// ---- the microphone's meter ----
function showMeter() {
  const { rms, warning } = state.studio.meter();
  // dBFS from -60 to 0 on the meter's 0..1, as audio meters read.
  const db = rms > 0 ? 20 * Math.log10(rms) : -100;
  $('mic-level').value = Math.max(0, Math.min(1, (db + 60) / 60));
  $('mic-level').dataset.rms = rms.toFixed(4);
  const text = state.mutedAudio ? '' : {
    silent: 'Your microphone has been silent for 5 seconds: check that it is the right one and not muted on the device.',
    clipping: 'Your microphone is clipping (too loud): turn its volume down or move back a little.',
  }[warning] || '';
  const el = $('mic-warning');
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

// ---- live ----
function setState(name) {
  $('st-state').textContent = name;
  const badge = $('badge');
  badge.dataset.state = name;
  badge.textContent = { live: 'LIVE', connecting: 'CONNECTING', reconnecting: 'RECONNECTING', failed: 'NOT REACHING ANY DESTINATION' }[name] || 'OFFLINE';
  const busy = ['connecting', 'live', 'reconnecting', 'failed'].includes(name);
  $('golive').disabled = busy;
  $('stop').disabled = !busy;
  document.title = name === 'live' ? '● LIVE — ivs-relay' : 'Go live — ivs-relay';
}

/** Re-publishing after a lost connection: waits 1 s, 2 s, 4 s … 10 s, for this many tries. */
const RECONNECT = { firstMs: 1000, maxMs: 10000, tries: 8 };
/** ICE "disconnected" for this long counts as lost (it often recovers within a few seconds). */
const DISCONNECTED_MS = 3000;

async function goLive() {
  say('');
  if (!$('settings').reportValidity()) return;
  if (!state.destinations.length && !(state.config.destinations || []).length) {
    say('Add a destination first: this relay has none of its own.');
    return;
  }
  saveSettings();
  state.stopped = false;
  state.attempt = 0;
  state.reconnects = 0;
  await connect();
}

/** One WHIP session: the first, or a new one after the connection was lost. */
async function connect() {
  setState(state.attempt ? 'reconnecting' : 'connecting');
  let publisher = null;
  try {
    if (!state.stream) await openDevices();
    const endpoint = new URL(`/whip/${encodeURIComponent($('stream').value)}`, location.href).toString();
    publisher = new WhipPublisher(endpoint, {
      token: $('token').value.trim(),
      destinations: state.destinations.map((d) => d.url),
      iceServers: (state.config.ice_servers || []).map((urls) => ({ urls })),
    });
    state.publisher = publisher;
    await publisher.publish(state.studio.output(), { maxBitrate: Number($('bitrate').value) * 1000, maxFramerate: 30 });
    if (state.stopped) { await publisher.stop(); return; }
    // The relay lists the page's destinations after its own, in the order they were sent.
    const first = await publisher.status().catch(() => null);
    const own = (first?.destinations || []).filter((d) => d.origin === 'client');
    state.destinations.forEach((d, i) => { d.id = own[i]?.id ?? null; });
    watchConnection(publisher);
    state.liveSince ||= 0;
    state.history = [];
    state.lastBytes = 0;
    state.lastTime = 0;
    state.lowQuality = 0;
    clearInterval(state.timer);
    state.timer = setInterval(refresh, 1000);
  } catch (e) {
    publisher?.close();
    if (state.publisher === publisher) state.publisher = null;
    if (state.stopped) return;
    // While reconnecting, what a restarting relay answers (unreachable, busy, the old session
    // still holding the name) is worth another try; a refusal of the stream itself is not.
    if (state.attempt > 0 && e instanceof WhipError && [0, 409, 502, 503].includes(e.status)) {
      scheduleReconnect(explain(e));
      return;
    }
    setState('idle');
    say(explain(e));
  }
}

function watchConnection(publisher) {
  let disconnected = 0;
  publisher.pc.addEventListener('connectionstatechange', () => {
    const pc = publisher.pc;
    clearTimeout(disconnected);
    if (pc?.connectionState === 'failed') connectionLost(publisher, 'the connection to the relay failed');
    else if (pc?.connectionState === 'disconnected') {
      disconnected = setTimeout(() => connectionLost(publisher, 'the connection to the relay dropped'), DISCONNECTED_MS);
    }
  });
}

/** The session is gone without Stop: drop it and publish again, same stream and destinations. */
function connectionLost(publisher, why) {
  if (state.stopped || state.publisher !== publisher) return;
  clearInterval(state.timer);
  state.publisher = null;
  state.reports = [];
  publisher.stop(); // a relay still up frees the stream name at once
  scheduleReconnect(why);
}

function scheduleReconnect(why) {
  state.attempt += 1;
  if (state.attempt > RECONNECT.tries) {
    setState('ended');
    renderDestinations();
    say(`The stream stopped: ${why}, and ${RECONNECT.tries} tries to publish again failed. Check the network and press Go Live.`);
    return;
  }
  state.reconnects += 1;
  $('st-reconnects').textContent = String(state.reconnects);
  const delay = Math.min(RECONNECT.firstMs * 2 ** (state.attempt - 1), RECONNECT.maxMs);
  setState('reconnecting');
  renderDestinations();
  say(`Reconnecting (try ${state.attempt} of ${RECONNECT.tries}, in ${Math.round(delay / 1000)} s): ${why}.`, 'info');
  clearTimeout(state.retry);
  state.retry = setTimeout(connect, delay);
}

async function stop() {
  state.stopped = true;
  clearTimeout(state.retry);
  clearInterval(state.timer);
  const publisher = state.publisher;
  state.publisher = null;
  state.reports = [];
  state.destinations.forEach((d) => { d.id = null; });
  setState('ended');
  renderDestinations();
  await publisher?.stop();
}

/** Sending far below the choice for 5 s running: say so, with what the browser says limits it. */
function checkQuality(fps, bps, reason) {
  const wantedBps = Number($('bitrate').value) * 1000;
  const low = state.liveSince && Date.now() - state.liveSince > 10000 && (fps < 30 * 0.6 || bps < wantedBps * 0.5);
  state.lowQuality = low ? state.lowQuality + 1 : 0;
  const cause = {
    cpu: 'the computer is too busy to encode more (close other programs or pick a lower resolution)',
    bandwidth: 'the network cannot carry more (pick a lower bit rate, or move closer to the Wi-Fi)',
    other: 'the browser is holding it back',
  }[reason] || 'the camera or the screen delivers fewer frames';
  const text = state.lowQuality >= 5
    ? `Sending ${Math.round(fps)} fps and ${formatRate(bps)} of the chosen 30 fps and ${formatRate(wantedBps)}: ${cause}.`
    : '';
  const el = $('quality-warning');
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
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
        checkQuality(report.framesPerSecond || 0, bps, report.qualityLimitationReason);
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
  // `undefined`: the relay did not answer (the connection's own state says whether it is lost);
  // `null`: it answered that it no longer has the session.
  const relay = await publisher.status().catch(() => undefined);
  if (state.publisher !== publisher || relay === undefined) return;
  if (relay === null || relay.state === 'ended') {
    connectionLost(publisher, relay?.end_reason ? `the relay ended the session (${relay.end_reason})` : 'the relay no longer has the session');
    return;
  }
  setState(relay.state);
  if (relay.state === 'live') {
    if (!state.liveSince) state.liveSince = Date.now();
    if (state.attempt) say('');
    state.attempt = 0;
  }
  $('st-elapsed').textContent = state.liveSince ? formatElapsed(Date.now() - state.liveSince) : '–';
  state.reports = relay.destinations || [];
  const live = state.reports.filter((d) => d.state === 'live').length;
  $('st-destinations').textContent = `${live} of ${state.reports.length} live`;
  $('st-reconnects').textContent = String(state.reconnects);
  renderDestinations();
  if (relay.state === 'reconnecting') say('No destination is reachable right now; the relay keeps retrying (see each one\'s last error below).', 'info');
  else if (relay.state === 'failed') say('Every destination refused the stream: see each one\'s reason below, fix it, and go live again.');
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
  // The microphone is muted in the mix (its meter still moves: "you are muted" is visible);
  // the camera's track is disabled (black, and left out of the overlay).
  if (kind === 'audio') state.studio.setMuted('mic', state.mutedAudio);
  else state.stream?.getVideoTracks().forEach((t) => { t.enabled = !state.mutedVideo; });
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
  if (!c.client_destination_allowed) {
    $('dest-add').hidden = true;
    $('dest-note').hidden = false;
  }
  renderDestinations();
  $('token').required = Boolean(c.token_required);
  const playback = new URLSearchParams(location.search).get('playback') || c.playback_url;
  if (playback) startPlayer(playback).catch((e) => { $('delay').textContent = `player failed: ${e.message}`; });
}

async function main() {
  setState('idle');
  const saved = restoreSettings();
  showPreset();
  $('dest-preset').addEventListener('change', () => { showPreset(); saveSettings(); });
  $('dest-add-button').addEventListener('click', addDestination);
  for (const id of ['dest-server', 'dest-key']) $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); addDestination(); } });
  await loadConfig();
  $('golive').addEventListener('click', goLive);
  $('stop').addEventListener('click', stop);
  state.studio.onTrack = showTrack;
  state.studio.onScreenEnded = () => { $('source').value = 'camera'; sourceChanged(); };
  $('source').addEventListener('change', sourceChanged);
  for (const id of ['overlay-corner', 'overlay-size']) $(id).addEventListener('change', overlayChanged);
  overlayChanged();
  $('mic-volume').addEventListener('input', () => state.studio.setVolume('mic', Number($('mic-volume').value)));
  $('tab-volume').addEventListener('input', () => state.studio.setVolume('tab', Number($('tab-volume').value)));
  $('mute-tab').addEventListener('click', () => {
    const muted = $('mute-tab').getAttribute('aria-pressed') !== 'true';
    state.studio.setMuted('tab', muted);
    $('mute-tab').setAttribute('aria-pressed', String(muted));
    $('mute-tab').textContent = muted ? 'Unmute shared audio' : 'Mute shared audio';
  });
  setInterval(showMeter, 100);
  $('mute-audio').addEventListener('click', () => toggleMute('audio'));
  $('mute-video').addEventListener('click', () => toggleMute('video'));
  for (const id of ['camera', 'microphone', 'resolution']) $(id).addEventListener('change', devicesChanged);
  $('bitrate').addEventListener('change', () => { saveSettings(); state.publisher?.keepResolution(Number($('bitrate').value) * 1000); });
  for (const id of ['stream', 'remember', 'token']) $(id).addEventListener('change', saveSettings);
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
