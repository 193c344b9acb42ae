//! Media like a browser sends, made by ffmpeg: 1280x720 30 fps H.264 constrained baseline at
//! 2.5 Mbit/s (IDR every 2 s, one slice per frame, no B-frames) and 48 kHz Opus, mono (as a
//! browser sends it) or stereo (as OBS does), in 20 ms pages. Shared by the tests and the
//! benchmark (`examples/loadgen.rs`).

use std::path::{Path, PathBuf};

pub struct TestMedia {
    pub video: PathBuf,
    pub audio: PathBuf,
}

/// Makes (once: existing files are kept) `{name}.h264` and `{name}-{channels}ch.ogg` in `dir`.
/// `noise` adds grain so that the video costs its full bit rate.
pub fn make(dir: &Path, name: &str, seconds: f64, noise: bool, channels: u8) -> std::io::Result<TestMedia> {
    std::fs::create_dir_all(dir)?;
    let media = TestMedia { video: dir.join(format!("{name}.h264")), audio: dir.join(format!("{name}-{channels}ch.ogg")) };
    let source = if noise { "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" } else { "testsrc2=size=1280x720:rate=30" };
    let video = format!(
        "-f lavfi -i {source} -t {seconds} -c:v libx264 -profile:v baseline -bf 0 -g 60 -x264-params slices=1 -b:v 2500k -maxrate 2500k -bufsize 2500k -f h264"
    );
    let audio = format!(
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t {seconds} -ac {channels} -c:a libopus -b:a 96k -page_duration 20000 -f ogg"
    );
    ffmpeg(&video, &media.video)?;
    ffmpeg(&audio, &media.audio)?;
    Ok(media)
}

/// Runs ffmpeg into `out` unless it exists, atomically (parallel tests share the files).
fn ffmpeg(args: &str, out: &Path) -> std::io::Result<()> {
    if out.exists() {
        return Ok(());
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = std::process::Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args.split_whitespace()).arg(&tmp).status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("ffmpeg failed making {}", out.display())));
    }
    std::fs::rename(&tmp, out)
}
