//! The image's one layer: a tar of `/ivs-relay`, gzip'd, the same bytes for the same binary.

use std::io::Write;

use flate2::{Compression, GzBuilder};

/// The uncompressed layer (its digest is the image's `diff_id`).
pub fn tar(relay: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(relay.len() as u64);
    builder.append_data(&mut header, &super::ENTRYPOINT[1..], relay).expect("a tar written to a Vec cannot fail");
    builder.into_inner().expect("a tar written to a Vec cannot fail")
}

/// gzip with no name and no time in its header, so it depends on the content alone.
pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut encoder = GzBuilder::new().mtime(0).write(Vec::with_capacity(tar.len() / 2), Compression::default());
    encoder.write_all(tar).expect("gzip into a Vec cannot fail");
    encoder.finish().expect("gzip into a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_layer_holds_the_binary_executable_and_nothing_else() {
        let tar = tar(b"the relay");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&tar)[..]).read_to_end(&mut unpacked).expect("gunzip");
        assert_eq!(unpacked, tar);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries().expect("entries");
        let mut entry = entries.next().expect("one entry").expect("entry");
        assert_eq!(entry.path().expect("path").to_str(), Some("ivs-relay"));
        assert_eq!(entry.header().mode().expect("mode"), 0o755);
        // The relay listens on an unprivileged port: no file capability (no pax xattr) needed.
        assert!(entry.pax_extensions().expect("pax").is_none(), "the binary carries extended attributes");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        assert_eq!(content, b"the relay");
        assert!(entries.next().is_none(), "nothing else in the layer");
    }
}
