//! The binaries ivsctl ships to AWS: the relay (alone in an empty root file system on Fargate's
//! x86_64) and the Lambda's `bootstrap` (on `provided.al2023`, whose glibc is older than a newer
//! build machine's). Both must be static x86_64 ELF executables: no program interpreter, hence
//! no shared libraries to be missing or too old.

use std::fmt;
use std::path::{Path, PathBuf};

use object::elf::{EM_X86_64, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, elf};

/// Which binary, for the error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    Relay,
    LambdaBootstrap,
}

impl Artifact {
    fn hint(self) -> &'static str {
        match self {
            Self::Relay => "build it with `cargo static --release`, or pass --image to run an image you built",
            Self::LambdaBootstrap => {
                "build it with `cargo static --release` (target/x86_64-unknown-linux-gnu/release/bootstrap), or pass --lambda-bootstrap"
            }
        }
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Relay => "the relay binary",
            Self::LambdaBootstrap => "the Lambda's bootstrap binary",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("cannot read {what} at {}: {source} ({})", path.display(), what.hint())]
    Unreadable { what: Artifact, path: PathBuf, source: std::io::Error },
    #[error("{what} {} is not a 64-bit ELF executable ({})", path.display(), what.hint())]
    NotElf { what: Artifact, path: PathBuf },
    #[error("{what} {} is built for ELF machine {machine}, but AWS runs it on x86_64 ({})", path.display(), what.hint())]
    WrongMachine { what: Artifact, path: PathBuf, machine: String },
    #[error("{what} {} is dynamically linked (it needs {interpreter}), so AWS cannot be relied on to have its libraries ({})", path.display(), what.hint())]
    Dynamic { what: Artifact, path: PathBuf, interpreter: String },
}

/// The bytes of the static x86_64 executable at `path`.
pub fn read_static(what: Artifact, path: &Path) -> Result<Vec<u8>, BinaryError> {
    let bytes = std::fs::read(path).map_err(|source| BinaryError::Unreadable { what, path: path.to_owned(), source })?;
    check(what, path, &bytes)?;
    Ok(bytes)
}

fn check(what: Artifact, path: &Path, bytes: &[u8]) -> Result<(), BinaryError> {
    let not_elf = || BinaryError::NotElf { what, path: path.to_owned() };
    let header = FileHeader64::<Endianness>::parse(bytes).map_err(|_| not_elf())?;
    let endian = header.endian().map_err(|_| not_elf())?;
    let machine = header.e_machine(endian);
    if machine != EM_X86_64 {
        return Err(BinaryError::WrongMachine { what, path: path.to_owned(), machine: machine_name(machine) });
    }
    for segment in header.program_headers(endian, bytes).map_err(|_| not_elf())? {
        if segment.p_type(endian) == elf::PT_INTERP {
            let interpreter = segment.interpreter(endian, bytes).ok().flatten().unwrap_or_default();
            return Err(BinaryError::Dynamic {
                what,
                path: path.to_owned(),
                interpreter: String::from_utf8_lossy(interpreter).into_owned(),
            });
        }
    }
    Ok(())
}

fn machine_name(machine: elf::Machine) -> String {
    if machine == elf::EM_AARCH64 { "aarch64 (arm64)".to_owned() } else { format!("{machine:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian executable header for `machine`, with one program header of
    /// type `segment` (PT_INTERP makes it dynamic, PT_LOAD static).
    fn elf(machine: elf::Machine, segment: elf::ProgramType) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[6] = 1; // version
        bytes[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        bytes[18..20].copy_from_slice(&machine.0.to_le_bytes());
        bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        bytes[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        bytes[64..68].copy_from_slice(&segment.0.to_le_bytes());
        bytes
    }

    #[test]
    fn a_static_x86_64_executable_passes() {
        check(Artifact::LambdaBootstrap, Path::new("bootstrap"), &elf(EM_X86_64, elf::PT_LOAD)).expect("static x86_64");
    }

    #[test]
    fn a_dynamic_executable_is_refused_with_how_to_build_the_static_one() {
        // This test binary itself is dynamically linked (cargo test builds for the host).
        let me = std::env::current_exe().expect("test binary");
        let err = read_static(Artifact::LambdaBootstrap, &me).expect_err("dynamic");
        assert!(matches!(err, BinaryError::Dynamic { .. }), "{err}");
        assert!(err.to_string().contains("cargo static --release") && err.to_string().contains("--lambda-bootstrap"), "{err}");
        let crafted = check(Artifact::Relay, Path::new("ivs-relay"), &elf(EM_X86_64, elf::PT_INTERP)).expect_err("dynamic");
        assert!(matches!(crafted, BinaryError::Dynamic { .. }), "{crafted}");
    }

    #[test]
    fn an_arm64_build_is_refused() {
        let err = check(Artifact::LambdaBootstrap, Path::new("bootstrap"), &elf(elf::EM_AARCH64, elf::PT_LOAD)).expect_err("arm64");
        assert!(matches!(err, BinaryError::WrongMachine { .. }) && err.to_string().contains("aarch64"), "{err}");
    }

    #[test]
    fn other_files_are_refused() {
        let err = check(Artifact::Relay, Path::new("relay.sh"), b"#!/bin/sh\nexec relay\n").expect_err("not ELF");
        assert!(matches!(err, BinaryError::NotElf { .. }), "{err}");
        let missing = read_static(Artifact::Relay, Path::new("/nonexistent/ivs-relay")).expect_err("missing");
        assert!(
            matches!(missing, BinaryError::Unreadable { .. }) && missing.to_string().contains("cannot read the relay binary"),
            "{missing}"
        );
    }
}
