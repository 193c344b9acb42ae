//! The image's one layer: a tar of `/ivs-relay`, gzip'd, the same bytes for the same binary.

use std::io::Write;

use flate2::{Compression, GzBuilder};

/// `security.capability` for `cap_net_bind_service=+ep`: Linux's `vfs_cap_data`, little-endian.
/// Container runtimes apply it when they unpack the layer, so the non-root user may bind 443.
#[rustfmt::skip]
const NET_BIND_SERVICE_CAPABILITY: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0x00, 0x04, 0x00, 0x00, // permitted, capabilities 0-31: 1 << CAP_NET_BIND_SERVICE (10)
    0x00, 0x00, 0x00, 0x00, // inheritable, 0-31
    0x00, 0x00, 0x00, 0x00, // permitted, 32-63
    0x00, 0x00, 0x00, 0x00, // inheritable, 32-63
];

/// The uncompressed layer (its digest is the image's `diff_id`).
pub fn tar(relay: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("SCHILY.xattr.security.capability", &NET_BIND_SERVICE_CAPABILITY[..])])
        .expect("a tar written to a Vec cannot fail");
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
    fn the_layer_holds_the_binary_executable_with_its_capability() {
        let tar = tar(b"the relay");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&tar)[..]).read_to_end(&mut unpacked).expect("gunzip");
        assert_eq!(unpacked, tar);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries().expect("entries");
        let mut entry = entries.next().expect("one entry").expect("entry");
        assert_eq!(entry.path().expect("path").to_str(), Some("ivs-relay"));
        assert_eq!(entry.header().mode().expect("mode"), 0o755);
        let xattr = entry
            .pax_extensions()
            .expect("pax")
            .expect("has pax")
            .filter_map(Result::ok)
            .find(|e| e.key() == Ok("SCHILY.xattr.security.capability"));
        assert_eq!(xattr.map(|e| e.value_bytes().to_vec()), Some(NET_BIND_SERVICE_CAPABILITY.to_vec()));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        assert_eq!(content, b"the relay");
        assert!(entries.next().is_none(), "nothing else in the layer");
    }
}
