//! `shoal status`: one table of every agent of a site (or of the agents named
//! on the command line), read from each agent's `GET /status`.
//!
//! The JSON is parsed with the shared [`shoal_status::Status`] type, the same
//! type the agent serializes, so both sides agree on one shape.

use crate::site::Sites;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use shoal_status::Status;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Show every agent's role, generation, lag behind the origin, peers, bytes
/// received from the origin and from peers, and last error.
///
/// The agents are read over HTTP (`GET <url>/status`), all at once. With
/// --site, every host of the site is read at its advertise_url (for a site
/// with several repositories, every agent of each, in one table per
/// repository); with --agent, the URLs given. The lag is how many generations an agent is behind the
/// origin's newest (when the origin is not among the agents read, behind the
/// newest generation any agent knows of). Exits with 1 when an agent cannot
/// be read, so that scripts notice; the table is printed either way.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["site", "agents"])))]
pub struct StatusArgs {
    /// The site file: read every host (origin and mirrors) at its advertise_url.
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// An agent's HTTP URL, such as http://mirror1.example.org:8780; repeat
    /// the option for more agents (also combined with --site).
    #[arg(long = "agent", value_name = "URL")]
    pub agents: Vec<String>,
    /// How long to wait for each agent's answer, e.g. 5s.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the statuses as JSON (a list of {repository, agent, url, status, error})
    /// instead of the table.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    shoal_config::parse_duration(s)
}

/// One agent to read: a label (the site's host name, or the URL) and its URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub url: String,
}

/// What reading one agent gave.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: Target,
    pub result: Result<Status, String>,
}

/// Runs `shoal status`.
pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let mut targets = Vec::new();
    // Which repository each target belongs to (a site with `repositories:`
    // gets one table per repository, each with its own reference generation).
    let mut groups: Vec<Option<String>> = Vec::new();
    if let Some(path) = &args.site {
        let sites = Sites::load(path).map_err(|e| {
            anyhow::anyhow!(
                "{e}\n{}: {} problem(s); fix them (`shoal check --site {}` lists them)",
                path.display(),
                e.0.len(),
                path.display()
            )
        })?;
        for site in &sites.repositories {
            for h in &site.hosts {
                targets.push(Target {
                    label: h.host.clone(),
                    url: h.advertise_url.clone(),
                });
                groups.push(site.repository.clone());
            }
        }
    }
    for u in &args.agents {
        crate::site::check_url(u).map_err(|why| {
            anyhow::anyhow!("--agent {u}: {why}; write http://HOST:PORT, such as http://mirror1.example.org:8780")
        })?;
        targets.push(Target {
            label: u.clone(),
            url: u.clone(),
        });
        groups.push(None);
    }
    if targets.is_empty() {
        bail!("no agents to read: the site has no hosts and no --agent was given");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let rows = rt.block_on(read_all(targets, args.timeout))?;
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .zip(&groups)
            .map(|(r, repository)| {
                serde_json::json!({
                    "repository": repository,
                    "agent": r.target.label,
                    "url": r.target.url,
                    "status": r.result.as_ref().ok(),
                    "error": r.result.as_ref().err(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", grouped_tables(&rows, &groups));
    }
    let failed = rows.iter().filter(|r| r.result.is_err()).count();
    if failed > 0 {
        eprintln!(
            "shoal status: {failed} of {} agent(s) could not be read (see the table); check that they run \
             and that this machine reaches their HTTP port",
            rows.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One table, or one per repository (titled) when the rows belong to
/// several; `groups[i]` is the repository of `rows[i]`.
pub fn grouped_tables(rows: &[Row], groups: &[Option<String>]) -> String {
    let mut names: Vec<&Option<String>> = Vec::new();
    for g in groups {
        if !names.contains(&g) {
            names.push(g);
        }
    }
    if names.len() <= 1 {
        return table(rows);
    }
    let mut out = String::new();
    for name in names {
        let own: Vec<Row> = rows
            .iter()
            .zip(groups)
            .filter(|(_, g)| *g == name)
            .map(|(r, _)| r.clone())
            .collect();
        match name {
            Some(n) => out.push_str(&format!("repository {n}:\n")),
            None => out.push_str("other agents:\n"),
        }
        out.push_str(&table(&own));
        out.push('\n');
    }
    out
}

/// Reads `GET <url>/status` of every target at once.
pub async fn read_all(targets: Vec<Target>, timeout: Duration) -> Result<Vec<Row>> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()
        .context("cannot create the HTTP client")?;
    let mut tasks = Vec::new();
    for t in targets {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let result = fetch_status(&client, &t.url).await;
            Row { target: t, result }
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.push(t.await.context("status reader task")?);
    }
    Ok(rows)
}

/// Reads and parses one agent's `/status`; the error says what failed.
pub async fn fetch_status(client: &reqwest::Client, base: &str) -> Result<Status, String> {
    let url = format!("{}/status", base.trim_end_matches('/'));
    let resp = client.get(&url).send().await.map_err(|e| {
        let mut msg = format!("cannot read {url}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        msg
    })?;
    let code = resp.status();
    if !code.is_success() {
        return Err(format!(
            "{url} answered {code}; is this a shoal-agent's HTTP address?"
        ));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    serde_json::from_slice::<Status>(&body).map_err(|e| {
        format!("{url} did not return a shoal-agent status document ({e}); is this a shoal-agent of the same version?")
    })
}

/// The newest generation of the origin, if an origin was read; otherwise the
/// newest generation any agent knows a signed head for. `true` when it came
/// from the origin itself.
pub fn reference_generation(rows: &[Row]) -> Option<(u64, bool)> {
    let ok = || rows.iter().filter_map(|r| r.result.as_ref().ok());
    if let Some(g) = ok()
        .filter(|s| s.role == "origin")
        .map(|s| s.generation_applied)
        .max()
    {
        return Some((g, true));
    }
    ok().map(|s| s.generation_known.max(s.generation_applied))
        .max()
        .map(|g| (g, false))
}

/// Bytes in a short human form: `0 B`, `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                s.push_str(c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The status table, with a summary line below it.
pub fn table(rows: &[Row]) -> String {
    let reference = reference_generation(rows);
    let header = [
        "AGENT",
        "ROLE",
        "GEN",
        "LAG",
        "STATE",
        "PEERS",
        "FROM ORIGIN",
        "FROM PEERS",
        "URL",
        "LAST ERROR",
    ];
    let mut cells = Vec::new();
    for r in rows {
        match &r.result {
            Ok(s) => {
                let lag = match (s.role.as_str(), reference) {
                    ("origin", _) => "-".to_string(),
                    (_, Some((g, _))) => g.saturating_sub(s.generation_applied).to_string(),
                    (_, None) => "?".to_string(),
                };
                let from_origin = s.bytes_down.get("origin").copied().unwrap_or(0);
                let from_peers: u64 = s
                    .bytes_down
                    .iter()
                    .filter(|(k, _)| k.as_str() != "origin")
                    .map(|(_, v)| *v)
                    .sum();
                let (fo, fp) = if s.role == "origin" {
                    ("-".to_string(), "-".to_string())
                } else {
                    (human_bytes(from_origin), human_bytes(from_peers))
                };
                let gen = if s.generation_known > s.generation_applied {
                    format!("{} (knows {})", s.generation_applied, s.generation_known)
                } else {
                    s.generation_applied.to_string()
                };
                let label = if r.target.label == r.target.url && !s.name.is_empty() {
                    s.name.clone()
                } else {
                    r.target.label.clone()
                };
                cells.push(vec![
                    label,
                    s.role.clone(),
                    gen,
                    lag,
                    s.state.clone(),
                    s.peers.len().to_string(),
                    fo,
                    fp,
                    r.target.url.clone(),
                    one_line(s.last_error.as_deref().unwrap_or("-")),
                ]);
            }
            Err(e) => cells.push(vec![
                r.target.label.clone(),
                "?".into(),
                "?".into(),
                "?".into(),
                "unreachable".into(),
                "?".into(),
                "?".into(),
                "?".into(),
                r.target.url.clone(),
                one_line(e),
            ]),
        }
    }
    let mut out = format_table(&header, &cells);
    let ok: Vec<&Status> = rows.iter().filter_map(|r| r.result.as_ref().ok()).collect();
    let mirrors: Vec<&&Status> = ok.iter().filter(|s| s.role != "origin").collect();
    match reference {
        Some((g, from_origin)) => {
            let in_sync = mirrors.iter().filter(|s| s.generation_applied >= g).count();
            let _ = writeln!(
                out,
                "{} generation {g}; {in_sync} of {} mirror(s) read are at it; {} of {} agent(s) could not be read",
                if from_origin { "origin at" } else { "no origin read; newest known" },
                mirrors.len(),
                rows.len() - ok.len(),
                rows.len()
            );
        }
        None => {
            let _ = writeln!(out, "no agent could be read");
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(role: &str, name: &str, applied: u64, known: u64) -> Status {
        Status {
            role: role.into(),
            name: name.into(),
            generation_applied: applied,
            generation_known: known,
            state: "idle".into(),
            ..Default::default()
        }
    }

    fn row(label: &str, r: Result<Status, String>) -> Row {
        Row {
            target: Target {
                label: label.into(),
                url: format!("http://{label}:8780"),
            },
            result: r,
        }
    }

    #[test]
    fn lag_is_measured_against_the_origin() {
        let mut m2 = st("mirror", "m2", 2, 3);
        m2.bytes_down.insert("origin".into(), 2048);
        m2.bytes_down.insert("mirrors".into(), 1024);
        m2.bytes_down.insert("other".into(), 1);
        m2.last_error = Some("upstream http://o:8780\n unreachable".into());
        let rows = vec![
            row("o", Ok(st("origin", "o", 3, 3))),
            row("m1", Ok(st("mirror", "m1", 3, 3))),
            row("m2", Ok(m2)),
            row(
                "m3",
                Err("cannot read http://m3:8780/status: connection refused".into()),
            ),
        ];
        assert_eq!(reference_generation(&rows), Some((3, true)));
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("AGENT"), "{t}");
        let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let o = cols(lines[1]);
        assert_eq!(&o[..4], ["o", "origin", "3", "-"], "{t}");
        let m1 = cols(lines[2]);
        assert_eq!(&m1[..4], ["m1", "mirror", "3", "0"], "{t}");
        // m2: applied 2, knows 3, one behind; 2 KiB from the origin, 1 KiB + 1 B from peers.
        assert!(lines[3].contains("2 (knows 3)"), "{t}");
        assert!(
            lines[3].contains("2.0 KiB") && lines[3].contains("1.0 KiB"),
            "{t}"
        );
        assert!(
            lines[3].ends_with("upstream http://o:8780 unreachable"),
            "{t}"
        );
        assert!(
            lines[4].contains("unreachable") && lines[4].contains("connection refused"),
            "{t}"
        );
        assert!(
            t.contains("origin at generation 3; 1 of 2 mirror(s) read are at it; 1 of 4"),
            "{t}"
        );
    }

    #[test]
    fn without_origin_the_newest_known_generation_is_the_reference() {
        let rows = vec![
            row("m1", Ok(st("mirror", "m1", 4, 5))),
            row("m2", Ok(st("mirror", "m2", 1, 1))),
        ];
        assert_eq!(reference_generation(&rows), Some((5, false)));
        let t = table(&rows);
        assert!(
            t.contains("no origin read; newest known generation 5"),
            "{t}"
        );
        let m2: Vec<&str> = t.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(m2[3], "4", "{t}");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
