//! `file://` destinations: the same FLV a player would get, written to disk.

use std::path::PathBuf;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::{SinkContext, observe_sent};
use crate::media::flv::{self, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::media::{Tag, TagKind};
use crate::status::IngestState;

pub(super) async fn run(path: PathBuf, mut tags: mpsc::Receiver<Tag>, ctx: SinkContext) {
    if let Err(e) = write_all(&path, &mut tags, &ctx).await {
        let error = format!("cannot write {}: {e}", path.display());
        tracing::error!(%error, "file sink failed");
        ctx.status.ingest_failed(error);
        // Keep draining so the session is not blocked; nothing more is written.
        while tags.recv().await.is_some() {}
    }
    ctx.status.set_ingest(IngestState::Closed);
}

async fn write_all(path: &PathBuf, tags: &mut mpsc::Receiver<Tag>, ctx: &SinkContext) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut out = BufWriter::new(tokio::fs::File::create(path).await?);
    out.write_all(&flv::file_header(ctx.has_audio)).await?;
    ctx.status.set_ingest(IngestState::Connected);
    tracing::info!(path = %path.display(), "recording to file");
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(tag) = tags.recv().await {
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
    }
    out.flush().await?;
    out.into_inner().sync_all().await
}
