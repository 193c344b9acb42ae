//! A WHIP publisher in Rust: streams an H.264 Annex B file and an Ogg Opus file to a WHIP
//! endpoint in real time, the way a browser would (but without a camera). Used by the
//! integration tests and the benchmark; handy for trying a relay from a terminal:
//!
//! ```text
//! ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 -c:v libx264 -profile:v baseline \
//!        -bf 0 -g 60 -x264-params slices=1 -f h264 video.h264
//! ffmpeg -f lavfi -i sine=frequency=440 -t 10 -ac 2 -ar 48000 -c:a libopus -page_duration 20000 audio.ogg
//! cargo run --example whip_publish -- --url http://127.0.0.1:8080/whip/demo --video video.h264 --audio audio.ogg
//! ```
//!
//! A stereo Opus file is offered as stereo (`sprop-stereo=1`), a mono one as a browser offers.
//! It ends the session with DELETE when the files run out (or after `--seconds`), or on Ctrl-C.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{BufMut, BytesMut};
use clap::Parser;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::media::io::h264_reader::{H264Reader, NalUnitType};
use webrtc::media::io::ogg_reader::OggReader;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

#[derive(Debug, Parser)]
struct Args {
    /// WHIP endpoint, e.g. http://127.0.0.1:8080/whip/demo
    #[arg(long)]
    url: String,
    /// H.264 Annex B file (one slice per frame, no B-frames).
    #[arg(long)]
    video: PathBuf,
    /// Ogg Opus file (20 ms pages).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Frame rate of the video file.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Bearer token.
    #[arg(long, env = "WHIP_TOKEN")]
    token: Option<String>,
    /// Ask the relay to publish here too (repeatable: one X-RTMP-Destination line each).
    #[arg(long = "destination")]
    destinations: Vec<String>,
    /// Stop after this many seconds (the files loop until then); default: play the files once.
    #[arg(long)]
    seconds: Option<f64>,
    /// Only use loopback ICE candidates (tests on one machine).
    #[arg(long)]
    loopback: bool,
    /// Answer a keyframe request (PLI) as an encoder would: jump to the file's next IDR at once
    /// instead of waiting for it (the file's keyframes are 2 s apart).
    #[arg(long)]
    keyframe_on_pli: bool,
    /// Send media to this UDP address instead of the answer's candidates, e.g. a forwarder that
    /// drops and delays packets on their way to the relay (tests).
    #[arg(long)]
    via: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ivs_relay::server::install_crypto_provider();
    let mut engine = MediaEngine::default();
    engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)?;
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    if args.loopback {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    }
    let api = APIBuilder::new().with_media_engine(engine).with_interceptor_registry(registry).with_setting_engine(settings).build();
    let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);

    let video = Arc::new(TrackLocalStaticSample::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned(),
            ..Default::default()
        },
        "video".to_owned(),
        "whip-publish".to_owned(),
    ));
    let pli = Arc::new(std::sync::atomic::AtomicBool::new(false));
    add_sendonly(&pc, video.clone(), args.keyframe_on_pli.then(|| pli.clone())).await?;
    let audio = match &args.audio {
        Some(_) => {
            let track = Arc::new(TrackLocalStaticSample::new(
                RTCRtpCodecCapability { mime_type: MIME_TYPE_OPUS.to_owned(), clock_rate: 48_000, channels: 2, ..Default::default() },
                "audio".to_owned(),
                "whip-publish".to_owned(),
            ));
            add_sendonly(&pc, track.clone(), None).await?;
            Some(track)
        }
        None => None,
    };

    let (connected_tx, mut connected) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    pc.on_peer_connection_state_change(Box::new(move |state| {
        let _ = connected_tx.send(state);
        Box::pin(async {})
    }));

    let offer = pc.create_offer(None).await?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await?;
    let _ = gathered.recv().await;
    let mut offer = pc.local_description().await.context("no local description")?.sdp;
    if let Some(path) = &args.audio {
        let (_, head) = OggReader::new(BufReader::new(open(path)?), true)?;
        if head.channels == 2 {
            offer = offer_stereo(&offer);
        }
    }

    let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build()?;
    let mut request = http.post(&args.url).header("content-type", "application/sdp").body(offer);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    for destination in &args.destinations {
        request = request.header("x-rtmp-destination", destination);
    }
    let response = request.send().await.context("WHIP POST failed")?;
    let status = response.status();
    if status.as_u16() != 201 {
        bail!("WHIP POST answered {status}: {}", response.text().await.unwrap_or_default().trim());
    }
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).context("201 without Location")?.to_owned();
    let session_url = reqwest::Url::parse(&args.url)?.join(&location)?;
    let mut answer = response.text().await?;
    if let Some(via) = args.via {
        answer = only_candidate(&answer, via);
    }
    pc.set_remote_description(RTCSessionDescription::answer(answer)?).await?;
    println!("session {session_url}");

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|s| *s == RTCPeerConnectionState::Connected))
        .await
        .context("WebRTC did not connect within 10 s")??;
    eprintln!("connected after {:?}", started.elapsed());

    let until = args.seconds.map(Duration::from_secs_f64);
    let video_task = tokio::spawn(play_video(video, args.video.clone(), args.fps, until, pli));
    let audio_task = audio.zip(args.audio.clone()).map(|(track, path)| tokio::spawn(play_audio(track, path, until)));
    tokio::select! {
        result = video_task => result??,
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
    }
    if let Some(task) = audio_task {
        task.abort();
    }
    let mut delete = http.delete(session_url.clone());
    if let Some(token) = &args.token {
        delete = delete.bearer_auth(token);
    }
    let status = delete.send().await.context("WHIP DELETE failed")?.status();
    println!("DELETE {status}");
    pc.close().await?;
    Ok(())
}

/// Adds a send-only track; `pli`, if given, is raised when the receiver asks for a keyframe.
async fn add_sendonly(
    pc: &webrtc::peer_connection::RTCPeerConnection,
    track: Arc<TrackLocalStaticSample>,
    pli: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> anyhow::Result<()> {
    let transceiver = pc
        .add_transceiver_from_track(
            track as Arc<dyn TrackLocal + Send + Sync>,
            Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, send_encodings: vec![] }),
        )
        .await?;
    // RTCP (PLI, NACK, TWCC feedback) has to be read for the interceptors to act on it.
    let sender = transceiver.sender().await;
    tokio::spawn(async move {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        while let Ok((packets, _)) = sender.read_rtcp().await {
            if let Some(pli) = &pli
                && packets.iter().any(|p| p.as_any().is::<PictureLossIndication>())
            {
                pli.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    Ok(())
}

/// Sends one access unit per tick: parameter sets and SEI travel with the slice after them.
async fn play_video(
    track: Arc<TrackLocalStaticSample>,
    path: PathBuf,
    fps: u32,
    until: Option<Duration>,
    pli: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let frame = Duration::from_secs(1) / fps;
    // The track turns a sample's duration into RTP ticks by truncation: 1/30 s is 2999.99…
    // ticks at 90 kHz, which would make the stream 30.01 fps; rounding up keeps it exact.
    let rtp_frame = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(fps)));
    let mut ticker = tokio::time::interval(frame);
    let started = Instant::now();
    loop {
        let mut reader = H264Reader::new(BufReader::new(open(&path)?), 1 << 20);
        let mut access_unit = BytesMut::new();
        while let Ok(nal) = reader.next_nal() {
            access_unit.put_slice(&[0, 0, 0, 1]);
            access_unit.put_slice(&nal.data);
            if nal.unit_type == NalUnitType::CodedSliceNonIdr && pli.load(std::sync::atomic::Ordering::SeqCst) {
                access_unit.clear(); // skipped: the next IDR goes out at the next tick
                continue;
            }
            if matches!(nal.unit_type, NalUnitType::CodedSliceIdr | NalUnitType::CodedSliceNonIdr) {
                if nal.unit_type == NalUnitType::CodedSliceIdr {
                    pli.store(false, std::sync::atomic::Ordering::SeqCst);
                }
                ticker.tick().await;
                track.write_sample(&Sample { data: access_unit.split().freeze(), duration: rtp_frame, ..Default::default() }).await?;
                if until.is_some_and(|u| started.elapsed() >= u) {
                    return Ok(());
                }
            }
        }
        if until.is_none() {
            return Ok(());
        }
    }
}

async fn play_audio(track: Arc<TrackLocalStaticSample>, path: PathBuf, until: Option<Duration>) -> anyhow::Result<()> {
    let page = Duration::from_millis(20);
    let mut ticker = tokio::time::interval(page);
    loop {
        let (mut reader, _) = OggReader::new(BufReader::new(open(&path)?), true)?;
        while let Ok((data, _)) = reader.parse_next_page() {
            if data.starts_with(b"OpusTags") {
                continue; // the comment header, not audio
            }
            ticker.tick().await;
            track.write_sample(&Sample { data: data.freeze(), duration: page, ..Default::default() }).await?;
        }
        if until.is_none() {
            return Ok(());
        }
    }
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// `sdp` saying of its Opus (payload type 111, webrtc-rs's) what OBS says of a stereo track: it
/// will send stereo and takes it too (RFC 7587's `sprop-stereo` and `stereo`).
fn offer_stereo(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 32);
    for line in sdp.split_inclusive('\n') {
        match line.strip_prefix("a=fmtp:111 ") {
            Some(parameters) => out.push_str(&format!("a=fmtp:111 {};stereo=1;sprop-stereo=1\r\n", parameters.trim_end())),
            None => out.push_str(line),
        }
    }
    out
}

/// `sdp` with its candidates replaced by one host candidate at `addr`.
fn only_candidate(sdp: &str, addr: std::net::SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut added = false;
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("a=candidate:") {
            if !added {
                out.push_str(&format!("a=candidate:1 1 udp 2130706431 {} {} typ host\r\n", addr.ip(), addr.port()));
                added = true;
            }
            continue;
        }
        out.push_str(line);
    }
    out
}
