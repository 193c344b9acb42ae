// A WHIP (RFC 9725) publisher for the browser: one RTCPeerConnection sending H.264 + Opus,
// offered by POST and ended by DELETE. Knows nothing of the page.

/** A refusal by the relay (or no answer at all: status 0). */
export class WhipError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
    this.reason = reason;
  }
}

/** The browser cannot send what the relay needs. */
export class CodecError extends Error {}

/** H.264 (packetization-mode 1) first, constrained baseline preferred: what the relay forwards without re-encoding. */
function h264First() {
  const caps = RTCRtpSender.getCapabilities?.('video');
  if (!caps) return null;
  const isH264 = (c) => c.mimeType.toLowerCase() === 'video/h264' && /packetization-mode=1/.test(c.sdpFmtpLine || '');
  const h264 = caps.codecs.filter(isH264).sort((a, b) => score(b) - score(a));
  if (h264.length === 0) return null;
  const rest = caps.codecs.filter((c) => /rtx|red|ulpfec/i.test(c.mimeType) === false && !isH264(c));
  return [...h264, ...rest];
}

function score(codec) {
  const fmtp = codec.sdpFmtpLine || '';
  if (/profile-level-id=42e0/i.test(fmtp)) return 3;
  if (/profile-level-id=4200/i.test(fmtp)) return 2;
  return 1;
}

function opusFirst() {
  const caps = RTCRtpSender.getCapabilities?.('audio');
  if (!caps) return null;
  const opus = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/opus');
  return opus.length ? opus : null;
}

function waitForIceGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Parses `Link: <stun:…>; rel="ice-server"` headers into RTCIceServer entries. */
function iceServersFrom(linkHeader) {
  if (!linkHeader) return [];
  return linkHeader.split(/,(?=\s*<)/).map((part) => {
    const url = /<([^>]+)>/.exec(part)?.[1];
    return url && /rel="?ice-server"?/.test(part) ? { urls: url } : null;
  }).filter(Boolean);
}

export class WhipPublisher {
  /**
   * @param {string} endpoint WHIP endpoint URL
   * @param {{token?: string, destinations?: string[], iceServers?: RTCIceServer[]}} options
   *   `destinations`: rtmp(s):// URLs to publish to besides the relay's own
   */
  constructor(endpoint, options = {}) {
    this.endpoint = endpoint;
    this.token = options.token || '';
    this.destinations = options.destinations || [];
    this.iceServers = options.iceServers || [];
    this.pc = null;
    this.sessionUrl = null;
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  /**
   * Publishes the tracks of `stream`. Resolves once the relay has answered (201).
   * @param {MediaStream} stream
   * @param {{maxBitrate: number, maxFramerate?: number}} encoding
   */
  async publish(stream, encoding) {
    const videoCodecs = h264First();
    if (!videoCodecs) throw new CodecError('This browser cannot send H.264 video, which the relay needs (it does not re-encode). Use a current Chrome, Edge, Safari or Firefox.');
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    const [videoTrack] = stream.getVideoTracks();
    const [audioTrack] = stream.getAudioTracks();
    if (videoTrack) {
      const video = pc.addTransceiver(videoTrack, {
        direction: 'sendonly',
        streams: [stream],
        sendEncodings: [{ maxBitrate: encoding.maxBitrate, maxFramerate: encoding.maxFramerate || 30 }],
      });
      video.setCodecPreferences(videoCodecs);
      this.videoSender = video.sender;
    }
    if (audioTrack) {
      const audio = pc.addTransceiver(audioTrack, { direction: 'sendonly', streams: [stream] });
      const opus = opusFirst();
      if (opus) audio.setCodecPreferences(opus);
      this.audioSender = audio.sender;
    }
    await this.keepResolution();

    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 2000);
    const headers = new Headers(this.headers({ 'Content-Type': 'application/sdp' }));
    // One value per destination; fetch joins them with commas, which the relay splits on.
    for (const url of this.destinations) headers.append('X-RTMP-Destination', url);
    let response;
    try {
      response = await fetch(this.endpoint, { method: 'POST', headers, body: pc.localDescription.sdp });
    } catch (e) {
      this.close();
      throw new WhipError(0, 'unreachable');
    }
    if (response.status !== 201) {
      const reason = (await response.text()).trim();
      this.close();
      throw new WhipError(response.status, reason);
    }
    this.sessionUrl = new URL(response.headers.get('Location'), this.endpoint).toString();
    const answer = await response.text();
    const extraIce = iceServersFrom(response.headers.get('Link'));
    if (extraIce.length) pc.setConfiguration({ ...pc.getConfiguration(), iceServers: extraIce });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  }

  /** Keeps the picture size when bandwidth is short, and applies the bit rate cap. */
  async keepResolution(maxBitrate) {
    if (!this.videoSender) return;
    const params = this.videoSender.getParameters();
    params.degradationPreference = 'maintain-resolution';
    if (maxBitrate && params.encodings?.[0]) params.encodings[0].maxBitrate = maxBitrate;
    try { await this.videoSender.setParameters(params); } catch { /* not every browser allows it before negotiation */ }
  }

  /** Swaps a device while live, without renegotiating. */
  async replaceTrack(track) {
    const sender = track.kind === 'video' ? this.videoSender : this.audioSender;
    if (sender) await sender.replaceTrack(track);
  }

  /** The relay's view of the session (state, ingest, reconnects…), or null. */
  async status() {
    if (!this.sessionUrl) return null;
    const response = await fetch(this.sessionUrl, { headers: this.headers(), cache: 'no-store' });
    return response.ok ? response.json() : null;
  }

  /** Adds a destination while live; resolves to its status (`id`, `host`, `state`…). */
  async addDestination(url) {
    const response = await this.#call('POST', '/destinations', { 'Content-Type': 'application/json' }, JSON.stringify({ url }));
    return response.json();
  }

  /** Ends one destination the page added; the stream goes on to the others. */
  async removeDestination(id) {
    await this.#call('DELETE', `/destinations/${encodeURIComponent(id)}`);
  }

  async #call(method, path, headers = {}, body = undefined) {
    if (!this.sessionUrl) throw new WhipError(404, 'not live');
    let response;
    try {
      response = await fetch(this.sessionUrl + path, { method, headers: this.headers(headers), body });
    } catch {
      throw new WhipError(0, 'unreachable');
    }
    if (!response.ok) throw new WhipError(response.status, (await response.text()).trim());
    return response;
  }

  /** Ends the session; `keepalive` lets it finish while the page unloads. */
  async stop() {
    const url = this.sessionUrl;
    this.sessionUrl = null;
    this.close();
    if (url) {
      try { await fetch(url, { method: 'DELETE', headers: this.headers(), keepalive: true }); } catch { /* the relay frees it anyway */ }
    }
  }

  close() {
    if (this.pc) { this.pc.close(); this.pc = null; }
  }
}
