//! The relay binary that goes into the image: it must run alone in an empty root file system on
//! Fargate's x86_64, so it must be a static x86_64 ELF executable (no program interpreter, hence
//! no shared libraries).

use std::path::{Path, PathBuf};

use object::elf::{EM_X86_64, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, elf};

const BUILD_HINT: &str = "build it with `cargo relay-static --release`, or pass --image to run an image you built";

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("cannot read the relay binary at {}: {source} ({BUILD_HINT})", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{} is not a 64-bit ELF executable ({BUILD_HINT})", path.display())]
    NotElf { path: PathBuf },
    #[error("{} is built for ELF machine {machine}, but Fargate runs x86_64 ({BUILD_HINT})", path.display())]
    WrongMachine { path: PathBuf, machine: String },
    #[error("{} is dynamically linked (it needs {interpreter}), so it cannot run in the image's empty root ({BUILD_HINT})", path.display())]
    Dynamic { path: PathBuf, interpreter: String },
}

/// The bytes of the static relay binary at `path`.
pub fn read_static_relay(path: &Path) -> Result<Vec<u8>, BinaryError> {
    let bytes = std::fs::read(path).map_err(|source| BinaryError::Unreadable { path: path.to_owned(), source })?;
    check(path, &bytes)?;
    Ok(bytes)
}

fn check(path: &Path, bytes: &[u8]) -> Result<(), BinaryError> {
    let not_elf = || BinaryError::NotElf { path: path.to_owned() };
    let header = FileHeader64::<Endianness>::parse(bytes).map_err(|_| not_elf())?;
    let endian = header.endian().map_err(|_| not_elf())?;
    let machine = header.e_machine(endian);
    if machine != EM_X86_64 {
        return Err(BinaryError::WrongMachine { path: path.to_owned(), machine: format!("{machine:?}") });
    }
    for segment in header.program_headers(endian, bytes).map_err(|_| not_elf())? {
        if segment.p_type(endian) == elf::PT_INTERP {
            let interpreter = segment.interpreter(endian, bytes).ok().flatten().unwrap_or_default();
            return Err(BinaryError::Dynamic { path: path.to_owned(), interpreter: String::from_utf8_lossy(interpreter).into_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_refused_with_how_to_build_the_static_one() {
        // This test binary itself is dynamically linked (cargo test builds for the host).
        let me = std::env::current_exe().expect("test binary");
        let err = read_static_relay(&me).expect_err("dynamic");
        assert!(matches!(err, BinaryError::Dynamic { .. }), "{err}");
        assert!(err.to_string().contains("cargo relay-static"), "{err}");
    }

    #[test]
    fn other_files_are_refused() {
        let err = check(Path::new("relay.sh"), b"#!/bin/sh\nexec relay\n").expect_err("not ELF");
        assert!(matches!(err, BinaryError::NotElf { .. }), "{err}");
        let missing = read_static_relay(Path::new("/nonexistent/ivs-relay")).expect_err("missing");
        assert!(matches!(missing, BinaryError::Unreadable { .. }), "{missing}");
    }
}
