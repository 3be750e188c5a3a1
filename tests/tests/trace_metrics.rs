//! What existing tooling reads from a Shoal mirror: the ftpsync-format
//! trace files (read here the way Debian's mirror checkers read them) and
//! the Prometheus metrics (checked with `promtool`).

use shoal_e2e::agents::*;
use shoal_e2e::repo::Reprepro;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

// ---- A trace reader written from the format's documentation ----------
//
// A trace file (project/trace/<host>) is: a first line with the date as
// `date -u` prints it ("Wed Apr 27 15:39:01 UTC 2016"), then "Key: value"
// lines whose keys are words, spaces and dashes; the second line may
// instead name the software that wrote it (dak's "Using dak v1"). Debian's checkers refuse a
// file with any other line, take `Archive serial` to compare a mirror with
// the archive's master trace, `Date` for the age of the sync, and read
// `Architectures` to know what the mirror carries. `_traces` lists the
// trace files, `_hierarchy` has one line per hop:
// "<trace file> <mirror name> <host> <upstream host>".

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn hms(s: &str) -> Option<i64> {
    let v: Vec<i64> = s
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == 3 && v[0] < 24 && v[1] < 60 && v[2] < 61).then(|| v[0] * 3600 + v[1] * 60 + v[2])
}

fn month(s: &str) -> Option<i64> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as i64 + 1)
}

/// "Wed Apr 27 15:39:01 UTC 2016" → Unix time.
fn parse_first_line(l: &str) -> Option<i64> {
    let w: Vec<&str> = l.split_whitespace().collect();
    if w.len() != 6 || !DAYS.contains(&w[0]) || !(w[4] == "UTC" || w[4] == "GMT") {
        return None;
    }
    let d: i64 = w[2].parse().ok().filter(|d| (1..=31).contains(d))?;
    Some(days_from_civil(w[5].parse().ok()?, month(w[1])?, d) * 86_400 + hms(w[3])?)
}

/// "Wed, 27 Apr 2016 15:39:01 +0000" → Unix time.
fn parse_rfc2822(v: &str) -> Option<i64> {
    let w: Vec<&str> = v.split_whitespace().collect();
    if w.len() != 6 || w[5] != "+0000" || !DAYS.iter().any(|d| w[0] == format!("{d},")) {
        return None;
    }
    Some(
        days_from_civil(w[3].parse().ok()?, month(w[2])?, w[1].parse().ok()?) * 86_400 + hms(w[4])?,
    )
}

fn format_first_line(t: i64) -> String {
    // Inverse of days_from_civil, for writing the master trace.
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = DAYS[(t.div_euclid(86_400) + 3).rem_euclid(7) as usize];
    let s = t.rem_euclid(86_400);
    format!(
        "{wd} {} {d:>2} {:02}:{:02}:{:02} UTC {y}",
        MONTHS[m as usize - 1],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

struct ParsedTrace {
    date: i64,
    fields: BTreeMap<String, String>,
}

fn parse_trace(text: &str) -> Result<ParsedTrace, String> {
    let mut lines = text.lines();
    let first = lines.next().ok_or("empty trace")?;
    let date = parse_first_line(first).ok_or(format!("bad first line '{first}'"))?;
    let mut fields = BTreeMap::new();
    for (i, l) in lines.enumerate() {
        let Some((k, v)) = l.split_once(':') else {
            if i == 0 {
                fields.insert("software".to_string(), l.to_string());
                continue;
            }
            return Err(format!("not a field: '{l}'"));
        };
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ' || c == '-')
        {
            return Err(format!("bad key in '{l}'"));
        }
        fields.insert(k.to_string(), v.trim().to_string());
    }
    Ok(ParsedTrace { date, fields })
}

/// The checker's verdict on one mirror: healthy (every field a Debian
/// checker needs, parseable) and up to date (the archive's serial, and
/// synced after the archive's master trace was written).
fn check_mirror(tree: &Path, name: &str) -> Result<ParsedTrace, String> {
    let dir = tree.join("project/trace");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"));
    let master = parse_trace(&read("master")?)?;
    let t = parse_trace(&read(name)?)?;
    for k in [
        "Date",
        "Date-Started",
        "Archive serial",
        "Creator",
        "Running on host",
        "Maintainer",
        "Sponsor",
        "Country",
        "Location",
        "Throughput",
        "Trigger",
        "Architectures",
        "Architectures-Configuration",
        "Upstream-mirror",
        "Total bytes received in rsync",
        "Total time spent in stage1 rsync",
        "Total time spent in stage2 rsync",
    ] {
        if t.fields.get(k).is_none_or(|v| v.is_empty()) {
            return Err(format!("{name}: no {k}"));
        }
    }
    let date = parse_rfc2822(&t.fields["Date"]).ok_or("bad Date")?;
    let started = parse_rfc2822(&t.fields["Date-Started"]).ok_or("bad Date-Started")?;
    if date != t.date || started > date {
        return Err(format!("{name}: dates disagree"));
    }
    if t.fields["Archive serial"] != master.fields["Archive serial"] {
        return Err(format!(
            "{name}: serial {} is not the archive's {}",
            t.fields["Archive serial"], master.fields["Archive serial"]
        ));
    }
    if t.date < master.date {
        return Err(format!("{name}: synced before the archive was"));
    }
    let up = &t.fields["Upstream-mirror"];
    if up.contains('/') || up.contains(':') {
        return Err(format!("{name}: Upstream-mirror '{up}' is not a host"));
    }
    for k in [
        "Total bytes received in rsync",
        "Total time spent in stage1 rsync",
        "Total time spent in stage2 rsync",
    ] {
        t.fields[k]
            .parse::<u64>()
            .map_err(|_| format!("{name}: {k} is not a number"))?;
    }
    // _traces names every trace, each of which reads.
    let list = read("_traces")?;
    let listed: Vec<&str> = list.lines().collect();
    if !listed.contains(&name) || !listed.contains(&"master") {
        return Err(format!("_traces lacks {name} or master: {listed:?}"));
    }
    for f in &listed {
        parse_trace(&read(f)?).map_err(|e| format!("{f}: {e}"))?;
    }
    // _hierarchy: ours is the last hop, from the upstream the trace names.
    let h = read("_hierarchy")?;
    for l in h.lines() {
        if l.split_whitespace().count() != 4 {
            return Err(format!("_hierarchy line '{l}'"));
        }
    }
    let last: Vec<&str> = h.lines().last().unwrap_or("").split_whitespace().collect();
    if last != [name, name, name, up.as_str()] {
        return Err(format!("_hierarchy ends with {last:?}"));
    }
    Ok(t)
}

#[test]
fn date_helpers_round_trip() {
    let t = 1_461_771_541; // Wed Apr 27 15:39:01 UTC 2016
    assert_eq!(format_first_line(t), "Wed Apr 27 15:39:01 UTC 2016");
    assert_eq!(parse_first_line(&format_first_line(t)), Some(t));
    assert_eq!(parse_rfc2822("Wed, 27 Apr 2016 15:39:01 +0000"), Some(t));
    assert!(parse_trace("Date: x\n").is_err());
    assert!(parse_trace("Wed Apr 27 15:39:01 UTC 2016\nUsing dak v1\nno colon\n").is_err());
}

fn metric_names(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn promtool_check_metrics(text: &str) {
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-deps test)");
    use std::io::Write;
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An origin carrying the archive's master trace, a mirror configured with
/// its trace metadata: the mirror's traces pass the checker after each
/// sync, with this sync's bytes; its metrics pass promtool; an unreachable
/// origin is not "down".
#[test]
fn traces_pass_the_mirror_checker_and_metrics_pass_promtool() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = Reprepro::new(&dir.join("archive"), &dir.join("debs"));
    for i in 0..6 {
        repo.add(&format!("pkg{i}"), "1.0", 40_000 + i * 5_000);
    }
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let write_master = |serial: &str| {
        std::fs::create_dir_all(repo.public.join("project/trace")).unwrap();
        std::fs::write(
            repo.public.join("project/trace/master"),
            format!(
                "{}\nUsing dak v1\nRunning on host: ftp-master.example.org\nArchive serial: {serial}\n",
                format_first_line(now())
            ),
        )
        .unwrap();
    };
    write_master("2025010101");
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(dir, "origin", &repo.public, &key, "debian", &[]);
    assert_eq!(publish(&origin.state), 1);

    let cfg = dir.join("m1.yaml");
    std::fs::write(
        &cfg,
        format!(
            "role: mirror\nrepo: {}\nstate: {}\nlisten: 127.0.0.1:1\nprofile: debian\n\
             mirror:\n  origin_key: {pubkey}\n  upstreams: [{}]\n  trace_info:\n    \
             maintainer: Mirror Team <mirror@example.org>\n    sponsor: Example Org \
             https://example.org\n    country: DE\n    location: Berlin\n    throughput: 10Gb\n",
            dir.join("m1-repo").display(),
            dir.join("m1-state").display(),
            origin.url()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], &["--config", cfg_s]);
    m1.wait_generation(1);
    let t1 = check_mirror(&m1.repo, "m1").unwrap_or_else(|e| panic!("checker: {e}"));
    let trace1 = std::fs::read_to_string(m1.repo.join("project/trace/m1")).unwrap();
    println!("trace after generation 1:\n{trace1}");
    assert_eq!(t1.fields["Archive serial"], "2025010101");
    assert_eq!(t1.fields["Architectures"], "amd64 arm64");
    assert_eq!(t1.fields["Architectures-Configuration"], "ALL");
    assert_eq!(t1.fields["Upstream-mirror"], origin.http.ip().to_string());
    assert_eq!(t1.fields["Maintainer"], "Mirror Team <mirror@example.org>");
    assert_eq!(t1.fields["Country"], "DE");
    assert!(t1.fields["Creator"].starts_with("shoal-agent "), "{trace1}");
    let bytes1: u64 = t1.fields["Total bytes received in rsync"].parse().unwrap();
    assert!(
        bytes1 >= 200_000,
        "the first sync fetched everything: {trace1}"
    );

    // A second generation with one small package and a new serial.
    repo.add("small", "1.0", 3_000);
    write_master("2025010102");
    assert_eq!(publish(&origin.state), 2);
    m1.wait_generation(2);
    let t2 = check_mirror(&m1.repo, "m1").unwrap_or_else(|e| panic!("checker: {e}"));
    let trace2 = std::fs::read_to_string(m1.repo.join("project/trace/m1")).unwrap();
    println!("trace after generation 2:\n{trace2}");
    assert_eq!(t2.fields["Archive serial"], "2025010102");
    let bytes2: u64 = t2.fields["Total bytes received in rsync"].parse().unwrap();
    let lifetime: u64 = m1.status().unwrap().bytes_down.values().sum();
    assert!(
        bytes2 < bytes1 && bytes2 < lifetime,
        "this sync's bytes ({bytes2}), not the lifetime total ({lifetime}): {trace2}"
    );

    // Metrics: the names of Prometheus practice, accepted by promtool.
    let mm = get_text(&format!("{}/metrics", m1.url())).unwrap();
    let om = get_text(&format!("{}/metrics", origin.url())).unwrap();
    promtool_check_metrics(&mm);
    promtool_check_metrics(&om);
    let names = metric_names(&mm);
    for n in [
        "shoal_build_info",
        "shoal_generation_files",
        "shoal_generation_bytes",
        "shoal_last_sync_duration_seconds",
        "shoal_last_success_timestamp_seconds",
        "shoal_sync_failures_total",
        "shoal_refusals_total",
        "shoal_upstream_reachable",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing:\n{mm}");
    }
    for old in ["shoal_files", "shoal_bytes", "shoal_last_sync_seconds"] {
        assert!(!names.iter().any(|x| x == old), "{old} still there");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &mm,
            &format!("shoal_build_info{{version=\"{version}\",role=\"mirror\"}}")
        ),
        Some(1.0),
        "{mm}"
    );
    assert!(om.contains("role=\"origin\""), "{om}");
    let dur = sample(&mm, "shoal_last_sync_duration_seconds").unwrap();
    assert!(dur < 120.0, "the sync's own duration: {dur}");
    let last_ok = sample(&mm, "shoal_last_success_timestamp_seconds").unwrap();
    assert!((now() as f64 - last_ok).abs() < 120.0, "{last_ok}");
    assert_eq!(sample(&mm, "shoal_sync_failures_total"), Some(0.0), "{mm}");
    assert_eq!(
        sample(&mm, "shoal_refusals_total{kind=\"head\"}"),
        Some(0.0),
        "{mm}"
    );

    // The origin goes away: the mirror still holds the newest verifiable
    // generation, so it is up, with its upstream unreachable.
    drop(origin);
    wait_for(
        "the mirror to notice the origin is gone",
        Duration::from_secs(60),
        || {
            get_text(&format!("{}/metrics", m1.url()))
                .is_some_and(|m| sample(&m, "shoal_upstream_reachable") == Some(0.0))
        },
    );
    let mm = get_text(&format!("{}/metrics", m1.url())).unwrap();
    assert_eq!(sample(&mm, "shoal_up"), Some(1.0), "{mm}");
    assert_eq!(sample(&mm, "shoal_sync_failures_total"), Some(0.0), "{mm}");
}
