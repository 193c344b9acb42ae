//! The relay's benchmark: N WHIP publishers against one `ivs-relay`, publishing to an nginx-rtmp
//! ingest, then the seed's engine (one `ffmpeg -c:v copy -c:a aac` per stream) fed the same
//! media to the same ingest, and a side-by-side table of CPU and memory per stream and the
//! relay's added latency (RTP in → FLV tag out, from its own histogram).
//!
//! Each engine's CPU is also split in two: what its audio (Opus → AAC) costs and what the rest
//! (taking the media in, H.264 into FLV, RTMP out) does. For the relay the audio is its
//! `ivs-audio` threads; for the seed it is the difference from the same ffmpeg run without
//! audio (`-c:v copy` only), a third engine in the table.
//!
//! ```text
//! cargo build --release -p ivs-relay && cargo build --examples
//! cargo run --example loadgen -- --streams 10 --seconds 20
//! cargo run --release --example loadgen -- --streams 10,50,100 --publisher target/release/examples/whip_publish
//! cargo run --example loadgen -- --streams 10 --destinations 1,3
//! ```
//! With several counts, each pair (streams, destinations per stream) gets a fresh relay and one
//! row of the table; the seed runs at the first (smallest) stream count only. With several
//! destination counts, the table ends with what each extra destination costs.
//!
//! `--callgrind` runs the relay under valgrind's callgrind instead and counts the instructions
//! its threads execute in the window: per datagram on the media thread, per stream-second on the
//! audio workers. Those do not move with the machine's load as CPU time does, so two builds
//! compare within a per cent or so across runs and days; valgrind is ~50× slower, so use a
//! stream or two (`--streams 2`). The seed is not run.
//! It needs ffmpeg and nginx with the RTMP module (scripts/test.sh installs them); all traffic
//! stays on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::process::{Child, Command};

#[path = "../tests/common/test_media.rs"]
mod test_media;
use test_media::TestMedia as Media;

#[derive(Debug, Parser)]
struct Args {
    /// Publishers at once; several (e.g. 10,50,100) make one run and one table.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    streams: Vec<usize>,
    /// Destinations each stream is published to (the relay's fan-out); several (e.g. 1,3)
    /// measure what an extra destination costs.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    destinations: Vec<usize>,
    /// Seconds of measurement per engine (after a 3 s warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The relay binary (a release build measures what ships).
    #[arg(long, default_value = "target/release/ivs-relay")]
    relay: PathBuf,
    /// The WHIP publisher example.
    #[arg(long, default_value = "target/debug/examples/whip_publish")]
    publisher: PathBuf,
    /// Opus channels the publishers send: 1 as a browser does (the relay's AAC is then mono), 2
    /// as OBS does.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    audio_channels: u8,
    /// Working directory for media, configs and logs.
    #[arg(long, default_value = "target/loadgen")]
    work: PathBuf,
    /// Count the relay's instructions under callgrind instead of timing it (see above).
    #[arg(long)]
    callgrind: bool,
}

const WARM_UP: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for bin in [&args.relay, &args.publisher] {
        if !bin.exists() {
            bail!("{} is missing: cargo build --release -p ivs-relay && cargo build --examples", bin.display());
        }
    }
    std::fs::create_dir_all(&args.work)?;
    let work = args.work.canonicalize()?;
    let media = test_media::make(&work, "bench-720p30", (args.seconds + 10) as f64, true, args.audio_channels)?;
    let rtmp_port = free_port()?;
    let _nginx = start_nginx(&work, rtmp_port).await?;
    println!(
        "1280x720 30 fps H.264 2.5 Mbit/s + Opus 96 kbit/s {} per stream, {} s per run, ingest nginx-rtmp on 127.0.0.1:{rtmp_port}\n",
        if args.audio_channels == 2 { "stereo" } else { "mono" },
        args.seconds
    );
    let mut rows = Vec::new();
    for &streams in &args.streams {
        for &destinations in &args.destinations {
            rows.push((streams, destinations, measure_relay(&args, streams, destinations, &media, rtmp_port).await?));
        }
    }
    if args.callgrind {
        print_instructions(&rows);
        return Ok(());
    }
    let first = args.streams.iter().copied().min().unwrap_or(10);
    let seed = measure_seed(&args, first, &media, rtmp_port, SeedAudio::OpusToAac).await?;
    let seed_video = measure_seed(&args, first, &media, rtmp_port, SeedAudio::None).await?;
    let seed_audio = seed.cpu_per_stream - seed_video.cpu_per_stream;

    println!(
        "{:<28}{:>9}{:>7}{:>14}{:>16}{:>14}{:>14}{:>10}{:>22}{:>22}{:>24}{:>16}",
        "engine",
        "streams",
        "dests",
        "in/stream",
        "CPU/stream",
        "of it audio",
        "RSS/stream",
        "live",
        "video p50/p99 ms",
        "audio p50/p99 ms",
        "1st keyframe p50/p99",
        "datagrams/wake"
    );
    for (streams, destinations, relay) in &rows {
        println!(
            "{:<28}{:>9}{:>7}{:>9.2} Mb/s{:>14.2} %{:>12.2} %{:>10.2} MiB{:>10}{:>22}{:>22}{:>24}{:>16.1}",
            "ivs-relay",
            streams,
            destinations,
            relay.mbit_per_stream,
            relay.cpu_per_stream,
            relay.audio_cpu_per_stream,
            relay.rss_per_stream_mib,
            format!("{}/{streams}", relay.live),
            format!("{:.2} / {:.2}", relay.video_p50_ms, relay.video_p99_ms),
            format!("{:.2} / {:.2}", relay.audio_p50_ms, relay.audio_p99_ms),
            format!("{:.0} / {:.0} ms", relay.first_keyframe_ms.0, relay.first_keyframe_ms.1),
            relay.datagrams_per_wakeup,
        );
    }
    for (engine, figures, audio) in
        [("seed: ffmpeg per stream", &seed, format!("{seed_audio:.2} %")), ("seed without audio", &seed_video, "-".to_owned())]
    {
        println!(
            "{:<28}{:>9}{:>7}{:>14}{:>14.2} %{:>14}{:>10.2} MiB{:>10}{:>22}{:>22}",
            engine,
            first,
            1,
            "-",
            figures.cpu_per_stream,
            audio,
            figures.rss_per_stream_mib,
            format!("{}/{first}", figures.live),
            "n/a",
            "n/a"
        );
    }
    // The relay against the seed at the same count, whole and in its two halves.
    if let Some((_, _, relay)) = rows.iter().find(|r| r.0 == first && r.1 == 1) {
        let ratio = |seed: f64, relay: f64| seed / relay.max(f64::EPSILON);
        let rest = relay.cpu_per_stream - relay.audio_cpu_per_stream;
        println!(
            "{first} streams, seed ÷ relay CPU: {:.2}× in all; audio {:.2}× ({seed_audio:.2} / {:.2} %); the rest {:.2}× ({:.2} / {rest:.2} %)",
            ratio(seed.cpu_per_stream, relay.cpu_per_stream),
            ratio(seed_audio, relay.audio_cpu_per_stream),
            relay.audio_cpu_per_stream,
            ratio(seed_video.cpu_per_stream, rest),
            seed_video.cpu_per_stream,
        );
    }
    if let Some((_, _, relay)) = rows.first() {
        println!("relay idle RSS {:.2} MiB", relay.idle_rss_mib);
    }
    // What one more destination per stream costs, from the fewest and the most at each count.
    for &streams in &args.streams {
        let at: Vec<&(usize, usize, RelayFigures)> = rows.iter().filter(|r| r.0 == streams).collect();
        let (Some(low), Some(high)) = (at.iter().min_by_key(|r| r.1), at.iter().max_by_key(|r| r.1)) else { continue };
        if high.1 > low.1 {
            let extra = (high.1 - low.1) as f64;
            println!(
                "{streams} streams: each extra destination costs {:.2} % of a core and {:.2} MiB per stream",
                (high.2.cpu_per_stream - low.2.cpu_per_stream) / extra,
                (high.2.rss_per_stream_mib - low.2.rss_per_stream_mib) / extra
            );
        }
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_nginx(work: &Path, port: u16) -> anyhow::Result<Child> {
    let conf = work.join("nginx-rtmp.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\ndaemon off; master_process off; pid {w}/nginx.pid; error_log {w}/nginx-error.log;\nevents {{}}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; record off; }} }} }}\n",
            w = work.display()
        ),
    )?;
    let child = Command::new("nginx").arg("-c").arg(&conf).arg("-p").arg(work).kill_on_drop(true).spawn().context("nginx")?;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nginx-rtmp did not start (see {}/nginx-error.log)", work.display())
}

/// CPU time (seconds) and resident memory (bytes) of a process, from /proc.
fn usage(pid: u32) -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, cpu) = parse_stat(&stat).context("stat format")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((cpu, rss_kib * 1024))
}

/// The name and the CPU time (seconds, user + system) in a /proc `stat` line.
fn parse_stat(stat: &str) -> Option<(&str, f64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks as f64 / 100.0))
}

fn total_usage(pids: &[u32]) -> (f64, u64) {
    pids.iter().filter_map(|p| usage(*p).ok()).fold((0.0, 0), |(c, r), (c2, r2)| (c + c2, r + r2))
}

/// The name the relay's transcoding threads carry (`ivs_relay::transcoder::THREAD_NAME`).
const AUDIO_THREADS: &str = "ivs-audio";

/// CPU time (seconds) of the threads of `pid` named `name`, from /proc.
fn threads_cpu(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat).filter(|(thread, _)| *thread == name).map(|(_, cpu)| cpu))
        .sum()
}

struct RelayFigures {
    cpu_per_stream: f64,
    /// Of that, the `ivs-audio` threads: decoding Opus and encoding AAC.
    audio_cpu_per_stream: f64,
    /// RTP payload the relay took in, per stream: 2.6 Mbit/s when the publishers keep real time.
    mbit_per_stream: f64,
    /// Offer answered → first keyframe sent to the ingest, p50 and p99 (ms).
    first_keyframe_ms: (f64, f64),
    rss_per_stream_mib: f64,
    idle_rss_mib: f64,
    video_p50_ms: f64,
    video_p99_ms: f64,
    audio_p50_ms: f64,
    audio_p99_ms: f64,
    live: usize,
    /// What the media thread read per wake-up (receive moderation).
    datagrams_per_wakeup: f64,
    /// With `--callgrind`.
    instructions: Option<Instructions>,
}

async fn measure_relay(args: &Args, streams: usize, destinations: usize, media: &Media, rtmp_port: u16) -> anyhow::Result<RelayFigures> {
    let http = free_port()?;
    let udp = free_port()?;
    let destination_flags =
        (1..=destinations).flat_map(|k| ["--destination".to_owned(), format!("rtmp://127.0.0.1:{rtmp_port}/live/{{stream}}-{k}")]);
    let mut command = match args.callgrind {
        false => Command::new(&args.relay),
        true => {
            let mut valgrind = Command::new("valgrind");
            // Counting starts with the window (`callgrind_control -i on`); one file a thread.
            valgrind
                .args(["--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"])
                .arg(format!("--callgrind-out-file={}/callgrind.%p", args.work.display()))
                .arg(&args.relay);
            valgrind
        }
    };
    let mut relay = command
        .args(["--http", "--listen", &format!("127.0.0.1:{http}"), "--udp-port", &udp.to_string()])
        .args(destination_flags)
        .args(["--max-destinations", &destinations.to_string(), "--max-sessions", "1000"])
        // Every publisher posts from 127.0.0.1 at once: lift the per-address POST limit.
        .args(["--posts-per-minute", "1000000"])
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(args.work.join("relay.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("relay")?;
    let pid = relay.id().context("relay pid")?;
    let base = format!("http://127.0.0.1:{http}");
    for _ in 0..300 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, idle_rss) = usage(pid)?;
    // Under valgrind every handshake takes longer.
    let warm_up = if args.callgrind { WARM_UP * 4 } else { WARM_UP };

    let mut publishers = Vec::new();
    for n in 0..streams {
        // The publishers (webrtc-rs encrypting 2.6 Mbit/s each, ~4 % of a core apiece) share this
        // machine with the relay; at full niceness they yield to it, as the relay would have its
        // machine to itself when deployed, instead of starving it by sheer number.
        let child = Command::new("nice")
            .args(["-n", "19"])
            .arg(&args.publisher)
            .args([
                "--url",
                &format!("{base}/whip/bench{n}"),
                "--loopback",
                "--seconds",
                &(args.seconds + warm_up.as_secs() + 2).to_string(),
            ])
            .arg("--video")
            .arg(&media.video)
            .arg("--audio")
            .arg(&media.audio)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(args.work.join(format!("publisher-{n}.log")))?)
            .kill_on_drop(true)
            .spawn()
            .context("publisher")?;
        publishers.push(child);
    }
    tokio::time::sleep(warm_up).await;
    if args.callgrind {
        callgrind_control(pid, "--instr=on").await?;
    }
    let before_metrics = reqwest::get(format!("{base}/metrics")).await?.text().await?;
    let (cpu0, _) = usage(pid)?;
    let audio0 = threads_cpu(pid, AUDIO_THREADS);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (cpu1, rss) = usage(pid)?;
    let audio1 = threads_cpu(pid, AUDIO_THREADS);
    let wall = started.elapsed().as_secs_f64();
    if args.callgrind {
        callgrind_control(pid, "--dump").await?;
    }
    let metrics = reqwest::get(format!("{base}/metrics")).await?.text().await?;
    let live = gauge(&metrics, "ivs_relay_sessions") as usize;
    if live < streams {
        // Why the others ended, from the relay's own count (publishers' logs are in the work dir).
        let ended: Vec<&str> = metrics.lines().filter(|l| l.starts_with("ivs_relay_sessions_ended_total")).collect();
        println!("{live}/{streams} sessions live; ended: {}", ended.join(", "));
    }
    let (video, audio) = (latency(&before_metrics, &metrics, "video"), latency(&before_metrics, &metrics, "audio"));
    // Every session started before the first scrape: the whole histogram.
    let first_keyframe = quantiles("", &metrics, "ivs_relay_first_keyframe_seconds_bucket{", "");
    // What a counter grew by over the measured window.
    let counted = |name: &str| gauge(&metrics, name) - gauge(&before_metrics, name);
    let bytes_in = counted("ivs_relay_rtp_received_bytes_total");
    let datagrams_per_wakeup = counted("ivs_relay_media_datagrams_total") / counted("ivs_relay_media_wakeups_total").max(1.0);
    for mut p in publishers {
        let _ = p.kill().await;
    }
    let _ = relay.kill().await;
    let n = streams as f64;
    let instructions = match args.callgrind {
        true => Some(count_instructions(&args.work, pid, counted("ivs_relay_media_datagrams_total"), n * wall)?),
        false => None,
    };
    Ok(RelayFigures {
        cpu_per_stream: (cpu1 - cpu0) / wall * 100.0 / n,
        audio_cpu_per_stream: (audio1 - audio0) / wall * 100.0 / n,
        mbit_per_stream: bytes_in * 8.0 / wall / n / 1e6,
        first_keyframe_ms: first_keyframe,
        rss_per_stream_mib: (rss.saturating_sub(idle_rss)) as f64 / n / 1048576.0,
        idle_rss_mib: idle_rss as f64 / 1048576.0,
        video_p50_ms: video.0,
        video_p99_ms: video.1,
        audio_p50_ms: audio.0,
        audio_p99_ms: audio.1,
        live,
        datagrams_per_wakeup,
        instructions,
    })
}

struct SeedFigures {
    cpu_per_stream: f64,
    rss_per_stream_mib: f64,
    live: usize,
}

/// The seed's engine as it runs, or without its audio: what is left is what its audio costs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SeedAudio {
    OpusToAac,
    None,
}

async fn measure_seed(args: &Args, streams: usize, media: &Media, rtmp_port: u16, audio: SeedAudio) -> anyhow::Result<SeedFigures> {
    let mut engines = Vec::new();
    for n in 0..streams {
        let mut ffmpeg = Command::new("ffmpeg");
        // Looped like the publishers' media, so a run longer than the clip measures engines
        // that still run (a finished ffmpeg counted as 0 % and not live).
        ffmpeg.args(["-v", "error", "-re", "-stream_loop", "-1", "-f", "h264", "-framerate", "30", "-i"]).arg(&media.video);
        if audio == SeedAudio::OpusToAac {
            ffmpeg.args(["-re", "-stream_loop", "-1", "-i"]).arg(&media.audio).args([
                "-map",
                "1:a",
                "-c:a",
                "aac",
                // The relay's default: 128 kbit/s stereo, 64 kbit/s mono.
                "-b:a",
                &format!("{}k", 64 * u32::from(args.audio_channels)),
            ]);
        }
        let child = ffmpeg
            .args(["-map", "0:v", "-c:v", "copy", "-f", "flv", &format!("rtmp://127.0.0.1:{rtmp_port}/live/seed{n}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("ffmpeg")?;
        engines.push(child);
    }
    tokio::time::sleep(WARM_UP).await;
    let pids: Vec<u32> = engines.iter().filter_map(Child::id).collect();
    let (cpu0, _) = total_usage(&pids);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (cpu1, rss) = total_usage(&pids);
    let wall = started.elapsed().as_secs_f64();
    let mut live = 0;
    for e in &mut engines {
        if e.try_wait()?.is_none() {
            live += 1;
        }
    }
    for mut e in engines {
        let _ = e.kill().await;
    }
    let n = streams as f64;
    Ok(SeedFigures { cpu_per_stream: (cpu1 - cpu0) / wall * 100.0 / n, rss_per_stream_mib: rss as f64 / n / 1048576.0, live })
}

/// Instructions the relay's threads executed in the window (`--callgrind`).
struct Instructions {
    /// The media thread's, per datagram read: `rtc`, the sessions' media core, the sinks.
    media_per_datagram: f64,
    /// The `ivs-audio` workers', per stream and second: Opus → AAC.
    audio_per_stream_second: f64,
    /// Where the counts are, for `callgrind_annotate`.
    files: String,
}

async fn callgrind_control(pid: u32, what: &str) -> anyhow::Result<()> {
    let status =
        Command::new("callgrind_control").arg(what).arg(pid.to_string()).stdout(Stdio::null()).stderr(Stdio::null()).status().await?;
    if !status.success() {
        bail!("callgrind_control {what} {pid} failed");
    }
    Ok(())
}

/// Reads the one dump of relay `pid` (a file per thread) and tells the threads apart by the
/// functions each ran.
fn count_instructions(work: &Path, pid: u32, datagrams: f64, stream_seconds: f64) -> anyhow::Result<Instructions> {
    let prefix = format!("callgrind.{pid}.");
    let (mut media, mut audio) = (0.0, 0.0);
    for entry in std::fs::read_dir(work)? {
        let path = entry?.path();
        if !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)) {
            continue;
        }
        let dump = std::fs::read_to_string(&path)?;
        let executed: f64 = dump.lines().find_map(|l| l.strip_prefix("summary: ")?.trim().parse().ok()).unwrap_or(0.0);
        if dump.contains("media_loop::run") {
            media += executed;
        } else if dump.contains("transcoder::Worker::run") {
            audio += executed;
        }
    }
    if media == 0.0 {
        bail!("no callgrind dump of the media thread in {} ({prefix}*)", work.display());
    }
    Ok(Instructions {
        media_per_datagram: media / datagrams.max(1.0),
        audio_per_stream_second: audio / stream_seconds,
        files: format!("{}/{prefix}*", work.display()),
    })
}

fn print_instructions(rows: &[(usize, usize, RelayFigures)]) {
    println!(
        "{:<9}{:>7}{:>10}{:>26}{:>32}  callgrind files",
        "streams", "dests", "live", "media thread / datagram", "audio / stream-second"
    );
    for (streams, destinations, relay) in rows {
        let Some(counted) = &relay.instructions else { continue };
        println!(
            "{:<9}{:>7}{:>10}{:>26.0}{:>32.0}  {}",
            streams,
            destinations,
            format!("{}/{streams}", relay.live),
            counted.media_per_datagram,
            counted.audio_per_stream_second,
            counted.files
        );
    }
}

fn gauge(metrics: &str, name: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// p50 and p99 (ms) of the relay's latency histogram for `track`, over the measured window
/// (the difference of two scrapes), interpolated within buckets.
fn latency(before: &str, after: &str, track: &str) -> (f64, f64) {
    quantiles(before, after, "ivs_relay_relay_latency_seconds_bucket{", &format!("track=\"{track}\""))
}

/// p50 and p99 (ms) of the histogram whose bucket lines start with `prefix` and contain `label`,
/// over the difference of two scrapes.
fn quantiles(before: &str, after: &str, prefix: &str, label: &str) -> (f64, f64) {
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        text.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(label))
            .filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
                Some((le, count))
            })
            .collect()
    };
    let (b0, b1) = (buckets(before), buckets(after));
    let window: Vec<(f64, f64)> =
        b1.iter().map(|(le, c)| (*le, c - b0.iter().find(|(l, _)| l == le).map(|(_, c)| *c).unwrap_or(0.0))).collect();
    let total = window.last().map(|(_, c)| *c).unwrap_or(0.0);
    let quantile = |q: f64| {
        let target = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &window {
            if count >= target {
                if le.is_infinite() {
                    return lower.0 * 1000.0;
                }
                let span = (count - lower.1).max(1.0);
                return (lower.0 + (le - lower.0) * ((target - lower.1) / span)) * 1000.0;
            }
            lower = (le, count);
        }
        f64::NAN
    };
    (quantile(0.5), quantile(0.99))
}
