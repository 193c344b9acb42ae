//! `ivs-relay`: takes a browser's WebRTC publish over WHIP and publishes it over RTMP(S) with
//! no video re-encode.
//!
//! Layout:
//! * `media` — the sans-IO core: RTP → FLV tags (H.264 remux, Opus → AAC, one timeline).
//! * `transcoder` — the audio workers: every session's Opus → AAC, off the media thread.
//! * `destination` — where a session publishes; parsing, redaction, and what clients may choose.
//! * `address` — which IP addresses a client may make the relay reach (ingests, ICE).
//! * `ice` — filtering an offer's ICE candidates by that rule.
//! * `peer` — answering an offer: a sans-IO `rtc` peer connection set up for publishing.
//! * `transport` — the media thread: every session's WebRTC traffic on one UDP socket.
//! * `stun` — the relay's public address, from STUN servers.
//! * `dns` — host names resolved in Rust (the static binary runs with no C resolver).
//! * `sink` — writing tags out: RTMP/RTMPS with reconnects, or an FLV file.
//! * `session` — one publisher: its peer link, the core and the sinks, and their lifecycle.
//! * `whip` — the HTTP surface (RFC 9725), the web app, health and metrics.
//! * `guard` — what a WHIP request passes first: origin, token, rate, body deadline; CORS.
//! * `connections` — the cap on open HTTP connections.
//! * `metrics` — Prometheus counters and histograms.
//! * `protection` — ECS task scale-in protection while sessions are live.
//! * `config` — command-line flags and the settings resolved from them.
//! * `server` — puts it together: listeners, shutdown.

pub mod address;
pub mod config;
pub mod connections;
pub mod destination;
pub mod dns;
pub mod guard;
pub mod ice;
pub mod media;
pub mod metrics;
pub mod offer;
pub mod peer;
pub mod protection;
pub mod relay;
pub mod server;
pub mod session;
pub mod sink;
pub mod status;
pub mod stun;
pub mod transcoder;
pub mod transport;
pub mod web;
pub mod whip;
