//! Every problem a site file can have is a [`SiteError`]: where it is (file,
//! line, column, key path) and what to do about it. They are made here and
//! only here: for a file that cannot be read, for what the YAML parser
//! refuses, and for what a rule of [`super::validate`] finds.

use super::spans::{join_key, Spans};
use super::DOC;
use std::fmt;

/// One problem in a site file, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteError {
    /// The file as it was named.
    pub file: String,
    /// 1-based line; 0 when the file could not be read at all.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// The key path, such as `mirrors[1].listen`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}: {}", self.file, self.key, self.message),
            (l, 0) => write!(f, "{}:{}: {}: {}", self.file, l, self.key, self.message),
            (l, c) => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, l, c, self.key, self.message
            ),
        }
    }
}

/// All problems found in a site file (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteErrors(pub Vec<SiteError>);

impl fmt::Display for SiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SiteErrors {}

impl SiteError {
    /// The site file could not be read at all.
    pub(super) fn unreadable(file: &str, e: &std::io::Error) -> SiteError {
        SiteError {
            file: file.to_string(),
            line: 0,
            column: 0,
            key: "(file)".into(),
            message: format!("cannot read the site file: {e}; check the path given to --site"),
        }
    }

    /// A rule broken at key `path`, at the line of that key (or of its
    /// nearest parent in the file).
    pub(super) fn at(file: &str, spans: &Spans, path: &str, message: String) -> SiteError {
        let (line, column) = spans.nearest(path);
        SiteError {
            file: file.to_string(),
            line,
            column,
            key: path.to_string(),
            message,
        }
    }
}

/// Turns a serde_yaml error into a located [`SiteError`] with advice.
pub(super) fn parse_error(e: &serde_yaml::Error, file: &str, spans: &Spans) -> SiteError {
    let full = e.to_string();
    let msg = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    // serde_yaml prefixes the message with the path of the value: `mirrors[1].listen: ...`.
    let (mut path, rest) = match msg.split_once(": ") {
        Some((p, r))
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            (p.to_string(), r.to_string())
        }
        _ => (String::new(), msg.clone()),
    };
    let (line, column) = match e.location() {
        Some(l) => (l.line(), l.column()),
        None => spans.nearest(&path),
    };
    let message = if let Some(field) = between(&rest, "unknown field `", "`") {
        path = join_key(&path, &field);
        let candidates: Vec<String> = rest
            .split_once("expected ")
            .map(|(_, tail)| {
                tail.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let hint = closest(&field, &candidates)
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        let allowed = if candidates.is_empty() {
            String::new()
        } else {
            format!(" Keys allowed here: {}.", candidates.join(", "))
        };
        format!("unknown key `{field}`: {hint}remove it or fix its spelling (see {DOC}).{allowed}")
    } else if rest.contains("invalid type") || rest.contains("invalid value") {
        format!(
            "{rest}{}; see {DOC} for the expected form",
            yaml11_hint(&rest)
        )
    } else {
        format!("{rest}; fix the YAML syntax here (see {DOC})")
    };
    SiteError {
        file: file.to_string(),
        line,
        column,
        key: if path.is_empty() {
            "(top level)".into()
        } else {
            path
        },
        message,
    }
}

/// YAML 1.1 wrote booleans as yes/no/on/off; Shoal reads YAML 1.2, where
/// only `true` and `false` are booleans. Says so when a boolean got one.
fn yaml11_hint(rest: &str) -> String {
    let Some(word) = between(rest, "invalid type: string \"", "\"") else {
        return String::new();
    };
    if !rest.contains("expected a boolean") {
        return String::new();
    }
    let v = match word.to_ascii_lowercase().as_str() {
        "yes" | "y" | "on" => "true",
        "no" | "n" | "off" => "false",
        _ => return String::new(),
    };
    format!(
        " (`{word}` is a boolean only in YAML 1.1; site.yaml is read as YAML 1.2, where \
         booleans are `true` and `false`: write `{v}`)"
    )
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(s[i..j].to_string())
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a likely typo.
pub(super) fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_booleans_get_a_hint() {
        let Err(e) =
            crate::site::Site::from_yaml("name: s\ndefaults:\n  manage_user: yes\n", "site.yaml")
        else {
            panic!("manage_user: yes was accepted");
        };
        let e = e.to_string();
        assert!(e.contains("manage_user"), "{e}");
        assert!(e.contains("YAML 1.1") && e.contains("write `true`"), "{e}");
        assert!(
            yaml11_hint("invalid type: string \"off\", expected a boolean").contains("`false`")
        );
        assert_eq!(
            yaml11_hint("invalid type: string \"maybe\", expected a boolean"),
            ""
        );
        assert_eq!(
            yaml11_hint("invalid type: string \"yes\", expected u64"),
            ""
        );
    }

    #[test]
    fn typo_suggestions() {
        let c = vec!["listen".to_string(), "repo_dir".to_string()];
        assert_eq!(closest("lisen", &c).as_deref(), Some("listen"));
        assert_eq!(closest("zzzzzzzzz", &c), None);
    }
}
