//! The local `shoal-agent` binaries to upload: their ELF architecture, size
//! and SHA-256, and which `uname -m` each one runs on.

use anyhow::{anyhow, Context as _, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A local shoal-agent binary: its architecture, size and SHA-256.
#[derive(Debug, Clone)]
pub struct LocalBinary {
    pub path: PathBuf,
    pub machine: u16,
    pub size: u64,
    pub sha256: String,
}

/// ELF `e_machine` values and the `uname -m` names that run them.
const MACHINES: &[(u16, &str, &[&str])] = &[
    (0x3e, "x86_64", &["x86_64", "amd64"]),
    (0xb7, "aarch64", &["aarch64", "arm64", "armv8l"]),
    (0x28, "arm", &["armv7l", "armv6l", "armv7", "arm"]),
    (0x03, "i386", &["i386", "i486", "i586", "i686"]),
    (0xf3, "riscv64", &["riscv64"]),
    (0x15, "ppc64", &["ppc64le", "ppc64"]),
    (0x16, "s390x", &["s390x"]),
    (0x102, "loongarch64", &["loongarch64"]),
];

/// The architecture name of an ELF machine number.
pub fn machine_name(m: u16) -> String {
    MACHINES
        .iter()
        .find(|(n, _, _)| *n == m)
        .map(|(_, name, _)| name.to_string())
        .unwrap_or_else(|| format!("ELF machine {m:#x}"))
}

/// The ELF machine number that runs on a host whose `uname -m` says `arch`.
pub fn machine_for_uname(arch: &str) -> Option<u16> {
    MACHINES
        .iter()
        .find(|(_, _, names)| names.contains(&arch))
        .map(|(n, _, _)| *n)
}

/// Reads the ELF header's machine field (the file must be a Linux ELF executable).
pub fn elf_machine(header: &[u8]) -> Result<u16, String> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return Err("not an ELF executable (build shoal-agent for Linux)".into());
    }
    let m = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => return Err("an ELF file with an unknown byte order".into()),
    };
    Ok(m)
}

pub fn inspect_binary(path: &Path) -> Result<LocalBinary> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("--agent-binary {}: cannot open it", path.display()))?;
    let mut header = [0u8; 64];
    let n = f.read(&mut header)?;
    let machine =
        elf_machine(&header[..n]).map_err(|e| anyhow!("--agent-binary {}: {e}", path.display()))?;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(LocalBinary {
        path: path.to_path_buf(),
        machine,
        size,
        sha256: hex::encode(h.finalize()),
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machine_is_read() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 0xb7;
        assert_eq!(elf_machine(&h), Ok(0xb7));
        assert_eq!(machine_name(0xb7), "aarch64");
        assert_eq!(machine_for_uname("aarch64"), Some(0xb7));
        assert_eq!(machine_for_uname("x86_64"), Some(0x3e));
        assert_eq!(machine_for_uname("pdp11"), None);
        assert!(elf_machine(b"#!/bin/sh\n")
            .unwrap_err()
            .contains("not an ELF"));
    }
}
