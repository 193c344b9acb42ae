//! `file://` destinations: the same FLV a player would get, written to disk. A recording never
//! replaces another: the file is created new, and a name already taken gets `-1`, `-2`, …
//! before its extension.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncWriteExt, BufWriter};

use super::queue::TagReceiver;
use super::{SinkContext, observe_sent};
use crate::media::TagKind;
use crate::media::flv::{self, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

/// How many numbered alternatives are tried when a recording's name is taken.
const MAX_NAME_SUFFIX: u32 = 1000;

pub(super) async fn run(path: PathBuf, mut tags: TagReceiver, ctx: SinkContext) {
    if let Err(e) = write_all(&path, &mut tags, &ctx).await {
        let error = format!("cannot write {}: {e}", path.display());
        tracing::error!(%error, "file sink failed");
        ctx.status.failed(error);
        return; // dropping `tags` tells the session to stop feeding this destination
    }
    ctx.status.closed();
}

/// `recording.flv`, `recording-1.flv`, `recording-2.flv`, …
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

/// Creates a file that did not exist: `path`, or the first free numbered alternative.
async fn create_new(path: &Path) -> std::io::Result<(PathBuf, tokio::fs::File)> {
    for n in 0..=MAX_NAME_SUFFIX {
        let candidate = numbered(path, n);
        match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&candidate).await {
            Ok(file) => return Ok((candidate, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{MAX_NAME_SUFFIX} recordings of this name exist already")))
}

async fn write_all(path: &Path, tags: &mut TagReceiver, ctx: &SinkContext) -> std::io::Result<()> {
    // Nothing is created for a session that never sends media.
    let Some(first) = tags.recv().await else { return Ok(()) };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let (path, file) = create_new(path).await?;
    let mut out = BufWriter::new(file);
    out.write_all(&flv::file_header(ctx.session.has_audio)).await?;
    tracing::info!(path = %path.display(), "recording to file");
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut next = Some(first);
    while let Some(tag) = next {
        let tag_type = match tag.kind {
            TagKind::Metadata => TAG_SCRIPT,
            TagKind::Video => TAG_VIDEO,
            TagKind::Audio => TAG_AUDIO,
        };
        buf.clear();
        flv::file_tag(tag_type, tag.timestamp_ms, &tag.body, &mut buf);
        out.write_all(&buf).await?;
        observe_sent(ctx, &tag, buf.len());
        if tag.keyframe {
            out.flush().await?; // a crash loses at most one GOP
        }
        next = tags.recv().await;
    }
    out.flush().await?;
    out.into_inner().sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_names_get_a_number_before_the_extension() {
        assert_eq!(numbered(Path::new("rec/cam1-T.flv"), 0), PathBuf::from("rec/cam1-T.flv"));
        assert_eq!(numbered(Path::new("rec/cam1-T.flv"), 2), PathBuf::from("rec/cam1-T-2.flv"));
        assert_eq!(numbered(Path::new("rec/cam1"), 1), PathBuf::from("rec/cam1-1"));
    }

    #[tokio::test]
    async fn an_existing_recording_is_never_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cam1.flv");
        std::fs::write(&path, b"earlier recording").expect("write");
        let (created, _file) = create_new(&path).await.expect("create");
        assert_eq!(created, dir.path().join("cam1-1.flv"));
        assert_eq!(std::fs::read(&path).expect("read"), b"earlier recording");
    }
}
