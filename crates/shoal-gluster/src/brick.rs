//! Bricks written as `HOST:PATH`: parsing, validation, normalisation and the
//! natural sort order used to lay them out.

use crate::LayoutError;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// One brick: a directory `path` on the server `host`.
///
/// Written as `HOST:PATH`, for example `annex1:/data/brick1`. IPv6 hosts are
/// written in brackets, `[fd00::1]:/data/brick1`, because the address itself
/// contains colons. [`Brick::host`] holds the address without brackets; the
/// [`Display`](fmt::Display) form adds them back.
///
/// Paths are normalised when parsed: repeated slashes collapse and a trailing
/// slash is dropped, so `/data//a/` and `/data/a` are the same brick.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Brick {
    host: String,
    path: String,
}

impl Brick {
    /// The server: a host name, an IPv4 address, or an IPv6 address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The absolute, normalised directory on that server.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host as written in `HOST:PATH` (IPv6 addresses in brackets).
    pub fn host_display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The brick as the gluster CLI wants it on its command line. Gluster
    /// splits `HOST:PATH` at the last `:` before the path and refuses
    /// bracketed IPv6 hosts ("internet address '[::1]' does not conform to
    /// standards", checked with glusterfs 10.3), so IPv6 hosts are written
    /// bare here: `fd00::1:/data/b1`. Everything else is the same as the
    /// [`Display`](fmt::Display) form.
    pub fn gluster_arg(&self) -> String {
        format!("{}:{}", self.host, self.path)
    }

    /// The key that identifies the host: host names are case-insensitive.
    pub(crate) fn host_key(&self) -> String {
        self.host.to_ascii_lowercase()
    }
}

impl fmt::Display for Brick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host_display(), self.path)
    }
}

impl FromStr for Brick {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_brick(s)
    }
}

impl TryFrom<String> for Brick {
    type Error = LayoutError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_brick(&s)
    }
}

impl From<Brick> for String {
    fn from(b: Brick) -> String {
        b.to_string()
    }
}

/// Parses a list of `HOST:PATH` strings, stopping at the first bad one.
pub fn parse_bricks<S: AsRef<str>>(items: &[S]) -> Result<Vec<Brick>, LayoutError> {
    items.iter().map(|s| parse_brick(s.as_ref())).collect()
}

/// Parses one `HOST:PATH`; see [`Brick`] for the accepted forms.
pub fn parse_brick(text: &str) -> Result<Brick, LayoutError> {
    let brick = text.to_string();
    let (host, path) = if let Some(rest) = text.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(LayoutError::InvalidHost {
                brick,
                host: text.split(":/").next().unwrap_or(text).to_string(),
                reason: "the `[` of an IPv6 address has no closing `]`".into(),
            });
        };
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let Some(path) = after.strip_prefix(':') else {
            return Err(LayoutError::MissingColon { brick });
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(LayoutError::InvalidHost {
                brick,
                host: format!("[{host}]"),
                reason: "brackets are only for IPv6 addresses and this is not one".into(),
            });
        }
        (host.to_string(), path)
    } else {
        // `::1:/data` or `fd00::5:/data`: an IPv6 address written without
        // brackets. Its colons make the split ambiguous, so refuse it and say
        // how to write it.
        if let Some(idx) = text.rfind(":/") {
            let candidate = &text[..idx];
            if candidate.contains(':') && candidate.parse::<Ipv6Addr>().is_ok() {
                return Err(LayoutError::UnbracketedIpv6 {
                    brick,
                    suggestion: format!("[{candidate}]:{}", &text[idx + 1..]),
                });
            }
        }
        let Some((host, path)) = text.split_once(':') else {
            return Err(LayoutError::MissingColon { brick });
        };
        if host.is_empty() {
            return Err(LayoutError::EmptyHost { brick });
        }
        check_host_name(&brick, host)?;
        (host.to_string(), path)
    };
    let path = normalise_path(&brick, path)?;
    Ok(Brick { host, path })
}

fn check_host_name(brick: &str, host: &str) -> Result<(), LayoutError> {
    let bad = |reason: String| LayoutError::InvalidHost {
        brick: brick.to_string(),
        host: host.to_string(),
        reason,
    };
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(bad(format!(
            "`{}` is not allowed; host names use letters, digits, `-`, `_` and `.`",
            c.escape_default()
        )));
    }
    if host.len() > 253 {
        return Err(bad("a host name is at most 253 characters long".into()));
    }
    if host.split('.').any(|label| label.is_empty()) {
        return Err(bad(
            "it has an empty label (a leading, trailing or doubled `.`)".into(),
        ));
    }
    if host.starts_with('-') {
        return Err(bad("a host name cannot start with `-`".into()));
    }
    Ok(())
}

fn normalise_path(brick: &str, path: &str) -> Result<String, LayoutError> {
    let bad = |reason: &str| LayoutError::InvalidPath {
        brick: brick.to_string(),
        reason: reason.to_string(),
    };
    if path.is_empty() {
        return Err(bad(
            "the path after `:` is empty; give the brick directory, like `annex1:/data/brick1`",
        ));
    }
    if !path.starts_with('/') {
        return Err(LayoutError::RelativePath {
            brick: brick.to_string(),
            path: path.to_string(),
        });
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "the path contains whitespace or control characters, which the gluster command line cannot carry; rename the directory",
        ));
    }
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(bad(
                "the path contains `.` or `..`; write the directory without them",
            ));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        return Err(bad(
            "`/` cannot be a brick: gluster stores its metadata in the brick directory, so use a dedicated directory such as `/data/brick1`",
        ));
    }
    Ok(out)
}

/// Natural ("human") order: runs of ASCII digits compare by numeric value, so
/// `annex2` < `annex10` and `10.0.0.9` < `10.0.0.10`; everything else
/// compares byte by byte. Strings that are only numerically equal (`a01`,
/// `a1`) fall back to plain byte order, so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let si = i;
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let nx = trim_zeros(&x[si..i]);
            let ny = trim_zeros(&y[sj..j]);
            let ord = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            let ord = x[i].cmp(&y[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_path() {
        let b = parse_brick("annex1:/data/a").unwrap();
        assert_eq!((b.host(), b.path()), ("annex1", "/data/a"));
        assert_eq!(b.to_string(), "annex1:/data/a");
        let b = parse_brick("10.0.0.1:/srv//gluster/b/").unwrap();
        assert_eq!((b.host(), b.path()), ("10.0.0.1", "/srv/gluster/b"));
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let b = parse_brick("[::1]:/data/a").unwrap();
        assert_eq!((b.host(), b.path()), ("::1", "/data/a"));
        assert_eq!(b.to_string(), "[::1]:/data/a");
        assert_eq!(b.gluster_arg(), "::1:/data/a");
        let b: Brick = "[fd00::5]:/b".parse().unwrap();
        assert_eq!(b.host_display(), "[fd00::5]");
        let b: Brick = "annex1:/b".parse().unwrap();
        assert_eq!(b.gluster_arg(), "annex1:/b");
    }

    #[test]
    fn refuses_bare_ipv6_and_says_to_bracket() {
        let e = parse_brick("::1:/p").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`::1:/p` looks like an IPv6 address without brackets; write it as `[::1]:/p`"
        );
        let e = parse_brick("fd00::5:/data/a").unwrap_err();
        assert!(
            e.to_string().contains("write it as `[fd00::5]:/data/a`"),
            "{e}"
        );
    }

    #[test]
    fn refuses_bad_brackets() {
        let e = parse_brick("[annex1]:/p").unwrap_err();
        assert!(e.to_string().contains("brackets are only for IPv6"), "{e}");
        let e = parse_brick("[::1:/p").unwrap_err();
        assert!(e.to_string().contains("no closing `]`"), "{e}");
        let e = parse_brick("[::1]/p").unwrap_err();
        assert!(
            e.to_string().contains("no `:` between host and path"),
            "{e}"
        );
    }

    #[test]
    fn refuses_missing_colon_empty_host_and_relative_path() {
        let e = parse_brick("annex1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`annex1` is not HOST:PATH: there is no `:` between host and path; write it like `annex1:/data/brick1`"
        );
        let e = parse_brick(":/data/a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`:/data/a` has an empty host: put the server's name or address before the `:`, like `annex1:/data/brick1`"
        );
        let e = parse_brick("annex1:data/a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`annex1:data/a`: the brick path `data/a` is relative; gluster needs an absolute path such as `/data/brick1`"
        );
    }

    #[test]
    fn refuses_bad_hosts_and_paths() {
        let cases = [
            ("an nex:/p", "` ` is not allowed"),
            ("annex/1:/p", "`/` is not allowed"),
            ("annex..1:/p", "empty label"),
            ("-annex:/p", "cannot start with `-`"),
            ("annex1:", "the path after `:` is empty"),
            ("annex1:/", "`/` cannot be a brick"),
            ("annex1:///", "`/` cannot be a brick"),
            ("annex1:/data/../etc", "contains `.` or `..`"),
            ("annex1:/data/./a", "contains `.` or `..`"),
            ("annex1:/my brick", "whitespace"),
        ];
        for (input, want) in cases {
            let e = parse_brick(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input}: {e}");
            assert!(
                e.contains(input),
                "{input}: the message names the brick: {e}"
            );
        }
        let long = format!("{}:/p", "a".repeat(254));
        assert!(parse_brick(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 253"));
    }

    #[test]
    fn serde_uses_the_text_form() {
        let b = parse_brick("[::1]:/data/a").unwrap();
        let s = serde_json::to_string(&b).unwrap();
        assert_eq!(s, r#""[::1]:/data/a""#);
        assert_eq!(serde_json::from_str::<Brick>(&s).unwrap(), b);
        let e = serde_json::from_str::<Brick>(r#""annex1:rel""#).unwrap_err();
        assert!(e.to_string().contains("relative"), "{e}");
    }

    #[test]
    fn natural_order() {
        let mut v = vec![
            "annex10",
            "annex2",
            "annex1",
            "annex",
            "annex02",
            "b",
            "10.0.0.10",
            "10.0.0.9",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "10.0.0.9",
                "10.0.0.10",
                "annex",
                "annex1",
                "annex02",
                "annex2",
                "annex10",
                "b"
            ]
        );
        assert_eq!(natural_cmp("a1", "a1"), Ordering::Equal);
        assert_eq!(natural_cmp("a01", "a1"), Ordering::Less);
        assert_eq!(natural_cmp("a1", "a01"), Ordering::Greater);
        assert_eq!(natural_cmp("/data/b2", "/data/b10"), Ordering::Less);
    }
}
