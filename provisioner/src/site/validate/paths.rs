//! Rules about paths: every folder is absolute, normalized and made of
//! characters every target writes unquoted; the state folder is outside the
//! repository; the binary comes from an absolute path or a URL, with a
//! checksum only for a URL.

use super::{Got, Resolve, Validator};
use std::path::{Path, PathBuf};

impl Validator {
    /// An absolute folder: as written (and checked), or `default`.
    pub(super) fn abs(&mut self, g: Option<Got<String>>, default: &str) -> PathBuf {
        match g {
            None => PathBuf::from(default),
            Some(g) => {
                if let Some(problem) = path_problem(&g.value, default) {
                    self.err(&g.path, problem);
                }
                PathBuf::from(g.value)
            }
        }
    }

    /// `repo_dir` and `state_dir`, which must not contain each other.
    pub(super) fn repo_and_state(&mut self, e: &Resolve) -> (PathBuf, PathBuf) {
        let repo_dir = self.abs(pick!(e, repo_dir), "/srv/shoal/repo");
        let state_dir = self.abs(pick!(e, state_dir), "/var/lib/shoal");
        if repo_dir == state_dir
            || repo_dir.starts_with(&state_dir)
            || state_dir.starts_with(&repo_dir)
        {
            let from = self.src(e.path, "state_dir", e.p);
            self.err(
                &from,
                format!(
                    "the state folder {} and the repository folder {} of '{}' must not contain each other; \
                     put state_dir outside repo_dir, such as /var/lib/shoal",
                    state_dir.display(),
                    repo_dir.display(),
                    e.name
                ),
            );
        }
        (repo_dir, state_dir)
    }

    /// Where the binary is copied from: required, an absolute path or a URL.
    pub(super) fn binary_source(&mut self, e: &Resolve) -> String {
        let Some(g) = pick!(e, binary_source) else {
            self.err(
                e.path,
                format!(
                    "'{}' has no binary_source: say where the shoal-agent binary is copied from, \
                     an absolute path or a URL, in `defaults: {{binary_source: ...}}`",
                    e.name
                ),
            );
            return String::new();
        };
        let ok = (g.value.starts_with('/') && g.value.chars().all(path_char))
            || g.value.split_once("://").is_some_and(|(s, rest)| {
                ["http", "https", "file", "puppet"].contains(&s)
                    && !rest.is_empty()
                    && !rest.contains(char::is_whitespace)
            });
        if !ok {
            self.err(
                &g.path,
                format!(
                    "'{}' is neither an absolute path nor an http(s)://, file:// or puppet:/// URL; \
                     write /path/to/shoal-agent or https://HOST/shoal-agent",
                    g.value
                ),
            );
        }
        g.value
    }

    /// A well-formed checksum, and only for a binary from a URL.
    pub(super) fn binary_checksum(
        &mut self,
        g: Option<Got<String>>,
        binary_source: &str,
    ) -> Option<String> {
        let g = g?;
        if let Err(why) = check_checksum(&g.value) {
            self.err(&g.path, why);
        } else if !binary_source.contains("://") && !binary_source.is_empty() {
            self.err(
                &g.path,
                "applies only when binary_source is a URL (a local file is copied as it is); remove it or use a URL",
            );
        }
        Some(g.value)
    }
}

/// Whether one of two absolute paths contains the other (or they are equal).
pub(super) fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Characters allowed in paths: those every target writes unquoted.
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._+@=:,~/-".contains(c)
}

/// What is wrong with an absolute path a site file gives, if anything;
/// `example` is a path of the same kind to suggest.
pub(super) fn path_problem(value: &str, example: &str) -> Option<String> {
    if !value.starts_with('/') {
        Some(format!(
            "'{value}' is not an absolute path; write it from the root, such as {example}"
        ))
    } else if let Some(c) = value.chars().find(|c| !path_char(*c)) {
        Some(format!(
            "'{value}' contains {c:?}; paths may hold only letters, digits and . _ + @ = : , ~ - / \
             (they are written unquoted into units, shell commands and nginx), so rename the folder"
        ))
    } else if value.len() > 1 && value.ends_with('/') {
        Some(format!(
            "'{value}' ends with '/'; write it without the trailing slash"
        ))
    } else if value.split('/').any(|c| c == ".." || c == ".") {
        Some(format!(
            "'{value}' contains '.' or '..'; write the normalized absolute path"
        ))
    } else {
        None
    }
}

/// Checks `<algorithm>:<hex>` with the digest length of the algorithm.
fn check_checksum(s: &str) -> Result<(), String> {
    let lens = [
        ("md5", 32),
        ("sha1", 40),
        ("sha224", 56),
        ("sha256", 64),
        ("sha384", 96),
        ("sha512", 128),
    ];
    let advice = "write <algorithm>:<hex digest>, such as the output of `sha256sum shoal-agent` as sha256:<64 hex digits>";
    let (algo, hex) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not a checksum; {advice}"))?;
    let Some((_, n)) = lens.iter().find(|(a, _)| *a == algo) else {
        return Err(format!(
            "unknown checksum algorithm '{algo}': use sha256 (or sha512, sha1, md5)"
        ));
    };
    if hex.len() != *n || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "'{s}' is not a {algo} checksum: expected {n} hex digits after '{algo}:'; {advice}"
        ));
    }
    Ok(())
}
