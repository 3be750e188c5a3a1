//! The `binary`, `config` and `unit` steps: compare a file's SHA-256 on the
//! host with what would be written, and upload only what differs,
//! atomically (a temporary file renamed over the old one).

use super::binary::{machine_name, sha256_hex, LocalBinary};
use super::facts::Facts;
use super::ssh::Remote;
use super::ui::Step;
use crate::status::human_bytes;
use std::path::Path;

/// Writes stdin to `$2`, checks its SHA-256 against `$3`, makes it
/// executable and renames it over `$1`.
const BINARY_SCRIPT: &str = r#"set -e
mkdir -p -- "$(dirname -- "$1")"
cat > "$2"
sum=$(sha256sum -- "$2" | cut -d' ' -f1)
if [ "$sum" != "$3" ]; then rm -f -- "$2"; echo "the uploaded file's sha256 is $sum, expected $3" >&2; exit 1; fi
chmod 0755 -- "$2"
mv -f -- "$2" "$1""#;

/// Writes stdin to `$1` (mode 0644) through a temporary file.
const FILE_SCRIPT: &str = r#"set -e
mkdir -p -- "$(dirname -- "$1")"
umask 022
cat > "$1.shoal-new"
chmod 0644 -- "$1.shoal-new"
mv -f -- "$1.shoal-new" "$1""#;

/// Compares and, unless `dry_run`, uploads the agent binary to `target`.
/// Returns whether it changed (or would) and the line that ends the step.
pub async fn binary(
    remote: &Remote,
    st: &Step,
    bin: &LocalBinary,
    facts: &Facts,
    target: &Path,
    dry_run: bool,
) -> Result<(bool, String), String> {
    let target = target.to_string_lossy().into_owned();
    let have = remote_sha256(remote, &target).await?;
    let short = &bin.sha256[..12];
    if have.as_deref() == Some(bin.sha256.as_str()) {
        return Ok((false, format!("{target} unchanged (sha256 {short}…)")));
    }
    let why = if have.is_some() { "differs" } else { "missing" };
    if dry_run {
        return Ok((
            true,
            format!(
                "would upload {} ({}, {}) to {target} ({why} there)",
                bin.path.display(),
                machine_name(bin.machine),
                human_bytes(bin.size)
            ),
        ));
    }
    let need = bin.size + (16 << 20);
    if facts.bin_free.1 < need {
        return Err(format!(
            "no space: {} free at {} but the binary needs {}; free some space there",
            human_bytes(facts.bin_free.1),
            facts.bin_free.0,
            human_bytes(need)
        ));
    }
    st.note(format!("uploading {} to {target}", human_bytes(bin.size)));
    let file = tokio::fs::File::open(&bin.path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", bin.path.display()))?;
    let tmp = format!("{target}.shoal-new");
    let total = bin.size;
    let o = remote
        .sh_stdin(BINARY_SCRIPT, &[&target, &tmp, &bin.sha256], file, |n| {
            st.bytes(n, total)
        })
        .await?;
    if !o.ok() {
        return Err(format!("uploading to {target} failed: {}", o.said()));
    }
    Ok((
        true,
        format!(
            "uploaded {} to {target} ({why} before; sha256 {short}…)",
            human_bytes(bin.size)
        ),
    ))
}

/// Compares and, unless `dry_run`, writes a small text file; `note` ends
/// the step's line. Returns whether it changed (or would) and that line.
pub async fn file(
    remote: &Remote,
    path: &Path,
    content: &str,
    note: &str,
    dry_run: bool,
) -> Result<(bool, String), String> {
    let target = path.to_string_lossy().into_owned();
    let want = sha256_hex(content.as_bytes());
    let have = remote_sha256(remote, &target).await?;
    if have.as_deref() == Some(want.as_str()) {
        return Ok((false, format!("{target} unchanged{note}")));
    }
    let verb = if have.is_some() { "update" } else { "write" };
    if dry_run {
        return Ok((true, format!("would {verb} {target}{note}")));
    }
    let o = remote
        .sh_stdin(FILE_SCRIPT, &[&target], content.as_bytes(), |_| {})
        .await?;
    if !o.ok() {
        return Err(format!("writing {target} failed: {}", o.said()));
    }
    let done = if verb == "update" {
        "updated"
    } else {
        "written"
    };
    Ok((true, format!("{target} {done}{note}")))
}

/// `sha256sum` of a remote file; `None` when it does not exist.
async fn remote_sha256(remote: &Remote, path: &str) -> Result<Option<String>, String> {
    let out = remote
        .sh(
            "if [ -f \"$1\" ]; then sha256sum -- \"$1\"; else echo missing; fi",
            &[path],
        )
        .await?;
    if !out.ok() {
        return Err(format!(
            "reading the checksum of {path} failed: {}",
            out.said()
        ));
    }
    let first = out.stdout.split_whitespace().next().unwrap_or("");
    if first == "missing" {
        return Ok(None);
    }
    if first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(first.to_ascii_lowercase()));
    }
    Err(format!(
        "unexpected sha256sum output for {path}: {}",
        out.stdout.trim()
    ))
}
