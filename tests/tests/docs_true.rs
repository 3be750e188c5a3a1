//! The README and docs/*.md name only commands, subcommands, flags and
//! metrics that exist, and every metric an agent exports is documented.

use shoal_e2e::agents::*;
use shoal_e2e::repo::Reprepro;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (file, text) of README.md and docs/*.md.
fn docs() -> Vec<(String, String)> {
    let mut v = vec![("README.md".to_string(), root().join("README.md"))];
    let mut md: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    md.sort();
    v.extend(md.into_iter().map(|p| {
        (
            format!("docs/{}", p.file_name().unwrap().to_string_lossy()),
            p,
        )
    }));
    v.into_iter()
        .map(|(n, p)| (n, std::fs::read_to_string(p).unwrap()))
        .collect()
}

/// Inline code spans and the lines of fenced blocks (continuations joined).
fn code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            let l = line.trim();
            if let Some(head) = l.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(l);
            out.push(std::mem::take(&mut pending));
        } else {
            let mut parts = line.split('`');
            parts.next();
            while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
                out.push(span.to_string());
            }
        }
    }
    out
}

/// One command's help: subcommands, flags (and whether each takes a value).
struct Help {
    subcommands: BTreeMap<String, Help>,
    flags: BTreeMap<String, bool>,
}

fn help(bin: &str, path: &[&str]) -> Help {
    let out = Command::new(shoal_e2e::bin(bin))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{bin} {path:?} --help");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags = BTreeMap::new();
    for w in text.split_whitespace().collect::<Vec<_>>().windows(2) {
        let f = w[0].trim_end_matches(',');
        if f.starts_with("--") && f.len() > 2 {
            let f = f.split('=').next().unwrap().to_string();
            let takes = w[1].starts_with('<');
            *flags.entry(f).or_insert(false) |= takes;
        }
    }
    flags.entry("--help".into()).or_insert(false);
    let mut subcommands = BTreeMap::new();
    let mut in_cmds = false;
    for l in text.lines() {
        if l.starts_with("Commands:") {
            in_cmds = true;
            continue;
        }
        if in_cmds {
            if !l.starts_with("  ") {
                if !l.trim().is_empty() {
                    in_cmds = false;
                }
                continue;
            }
            if l.starts_with("   ") {
                continue; // wrapped description
            }
            let name = l.split_whitespace().next().unwrap_or("");
            if !name.is_empty() && name != "help" {
                let mut p = path.to_vec();
                p.push(name);
                subcommands.insert(name.to_string(), help(bin, &p));
            }
        }
    }
    Help { subcommands, flags }
}

/// Checks one invocation; returns what does not exist.
fn check_invocation(tokens: &[&str], top: &Help) -> Vec<String> {
    let mut bad = Vec::new();
    let mut cur = top;
    let mut chain: Vec<&Help> = vec![top];
    let mut i = 1;
    let mut placed = false; // a subcommand or positional seen at this level
    while i < tokens.len() {
        let t = tokens[i];
        if ["#", "|", "&&", ";", ">", "…", "..."].contains(&t) {
            break;
        }
        if let Some(f) = t
            .strip_prefix("--")
            .map(|f| format!("--{}", f.split('=').next().unwrap()))
        {
            match chain.iter().rev().find_map(|h| h.flags.get(&f)) {
                Some(takes) => {
                    if *takes && !t.contains('=') {
                        i += 1;
                    }
                }
                None => bad.push(format!("flag {f}")),
            }
        } else if !cur.subcommands.is_empty() && !placed {
            // A subcommand (or alternatives such as origin|mirror).
            let mut next = None;
            for alt in t.split('|') {
                match cur.subcommands.get(alt) {
                    Some(h) => next = Some(h),
                    None => bad.push(format!("subcommand {alt}")),
                }
            }
            match next {
                Some(h) => {
                    cur = h;
                    chain.push(h);
                }
                None => break,
            }
        } else {
            placed = true;
        }
        i += 1;
    }
    bad
}

/// Pages whose bare flags belong to other programs (scripts/bench,
/// shoal-fuzz); their `shoal`/`shoal-agent` command lines are still checked.
const OTHER_TOOLS_DOCS: &[&str] = &[
    "docs/benchmarks.md",
    "docs/fuzzing.md",
    // rsync, apt-get and dnf flags of the soak's clients.
    "docs/reliability.md",
    // rsync, reprepro and createrepo_c flags of the archive hooks.
    "docs/archive-integration.md",
];
/// Bare flags of other programs quoted in the docs (start-stop-daemon).
const FOREIGN_FLAGS: &[&str] = &["--stop"];

#[test]
fn commands_and_flags_named_in_the_docs_exist() {
    let tops = [
        ("shoal-agent", help("shoal-agent", &[])),
        ("shoal", help("shoal", &[])),
    ];
    let all_flags: BTreeSet<String> = {
        fn walk(h: &Help, out: &mut BTreeSet<String>) {
            out.extend(h.flags.keys().cloned());
            for s in h.subcommands.values() {
                walk(s, out);
            }
        }
        let mut s = BTreeSet::new();
        for (_, h) in &tops {
            walk(h, &mut s);
        }
        s
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for (file, text) in docs() {
        for span in code(&text) {
            let tokens: Vec<&str> = span.split_whitespace().skip_while(|t| *t == "$").collect();
            let Some(first) = tokens.first() else {
                continue;
            };
            if let Some((_, top)) = tops.iter().find(|(n, _)| n == first) {
                // Log output such as "shoal bootstrap: …" is not a command.
                if tokens.get(1).is_some_and(|t| t.ends_with(':')) {
                    continue;
                }
                checked += 1;
                for b in check_invocation(&tokens, top) {
                    problems.push(format!("{file}: `{span}`: no {b}"));
                }
            } else if first.starts_with("--")
                && first.len() > 2
                && !OTHER_TOOLS_DOCS.contains(&file.as_str())
                && !FOREIGN_FLAGS.contains(first)
            {
                let f = first.split('=').next().unwrap();
                if !all_flags.contains(f) {
                    problems.push(format!("{file}: `{span}`: no command has {f}"));
                }
            }
        }
    }
    assert!(checked > 20, "found only {checked} command lines");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Names that look like metrics in the docs but are crates or Ansible
/// groups.
const NOT_METRICS: &[&str] = &[
    "shoal_agent",
    "shoal_pack",
    "shoal_manifest",
    "shoal_config",
    "shoal_status",
    "shoal_gluster",
    "shoal_fuzz",
    "shoal_provisioner",
    "shoal_e2e",
    "shoal_origin",
    "shoal_mirrors",
    // Ansible role variables named in the docs.
    "shoal_repositories",
    "shoal_state",
    "shoal_purge_data",
];

/// `shoal_*` metric names in code spans, and the old names listed under
/// "Changed metric names".
fn documented_metrics() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut old = BTreeSet::new();
    for (file, text) in docs() {
        for span in code(&text) {
            let b = span.as_bytes();
            let mut i = 0;
            while let Some(p) = span[i..].find("shoal_") {
                let s = i + p;
                let mut e = s;
                while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                    e += 1;
                }
                i = e;
                let name = &span[s..e];
                let before_ok = s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_');
                let after = &span[e..];
                // Metric names go on with a letter (`shoal_0.1.0` is a file).
                let starts_with_letter = b.get(s + 6).is_some_and(|c| c.is_ascii_alphabetic());
                if !before_ok
                    || !starts_with_letter
                    || name.ends_with('_')
                    || after.starts_with("::")
                    || after.starts_with('<')
                    || after.starts_with('=')
                    || NOT_METRICS.contains(&name)
                {
                    continue;
                }
                names.insert(name.to_string());
            }
        }
        if file == "docs/operators-guide.md" {
            let sect = text
                .split("### Changed metric names")
                .nth(1)
                .expect("operators guide has a Changed metric names section");
            let sect = sect.split("\n#").next().unwrap();
            for l in sect.lines().filter(|l| l.starts_with("| `")) {
                let first = l.split('|').nth(1).unwrap();
                old.extend(first.split('`').nth(1).map(str::to_string));
            }
        }
    }
    (names, old)
}

fn metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn metrics_in_the_docs_are_exported_and_exported_metrics_are_documented() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = Reprepro::new(&dir.join("archive"), &dir.join("debs"));
    repo.add("pkg", "1.0", 20_000);
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(dir, "origin", &repo.public, &key, "debian", &[]);
    assert_eq!(publish(&origin.state), 1);
    let m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], &[]);
    m1.wait_generation(1);
    drop(m1);
    // Restarted, it re-checks its packs: every optional metric has a value.
    let m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], &[]);
    let mut exported = BTreeSet::new();
    wait_for(
        "the mirror to export every metric",
        Duration::from_secs(60),
        || {
            let Some(m) = get_text(&format!("{}/metrics", m1.url())) else {
                return false;
            };
            exported = metric_names(&m);
            exported.contains("shoal_last_check_duration_seconds")
                && exported.contains("shoal_last_success_timestamp_seconds")
        },
    );
    exported.extend(metric_names(
        &get_text(&format!("{}/metrics", origin.url())).unwrap(),
    ));

    let (documented, old) = documented_metrics();
    assert!(!old.is_empty(), "no changed metric names parsed");
    let missing: Vec<_> = documented
        .iter()
        .filter(|n| !old.contains(*n) && !exported.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not exported: {missing:?}"
    );
    let still: Vec<_> = old.iter().filter(|n| exported.contains(*n)).collect();
    assert!(
        still.is_empty(),
        "listed as changed but still exported: {still:?}"
    );
    let undocumented: Vec<_> = exported
        .iter()
        .filter(|n| !documented.contains(*n))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exported but not documented: {undocumented:?}"
    );
}
