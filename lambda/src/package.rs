//! The deployment package: a zip holding `bootstrap` (mode 0755) for the `provided.al2023`
//! runtime. Byte-for-byte deterministic (fixed timestamps, one entry), so its SHA-256 changes
//! only when the binary does and `ivsctl deploy` can skip an unchanged function.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

#[derive(Debug, thiserror::Error)]
#[error("cannot build the Lambda zip: {0}")]
pub struct PackageError(#[from] zip::result::ZipError);

/// The zip for a `bootstrap` binary.
pub fn bootstrap_zip(binary: &[u8]) -> Result<Vec<u8>, PackageError> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(DateTime::default());
    zip.start_file("bootstrap", options)?;
    zip.write_all(binary).map_err(zip::result::ZipError::Io)?;
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_zip_holds_an_executable_bootstrap_and_is_the_same_every_time() {
        let binary = b"\x7fELF pretend binary".repeat(100);
        let first = bootstrap_zip(&binary).expect("zip");
        assert_eq!(first, bootstrap_zip(&binary).expect("zip"), "deterministic");
        let mut archive = zip::ZipArchive::new(Cursor::new(first)).expect("valid zip");
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_name("bootstrap").expect("bootstrap entry");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut unpacked = Vec::new();
        entry.read_to_end(&mut unpacked).expect("read");
        assert_eq!(unpacked, binary);
    }
}
