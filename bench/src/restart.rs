//! Restarts, measured: what an agent reads and checks before it seeds
//! again. Each agent is restarted twice: first as the sync left it (its
//! packs in librqbit's session and none sealed, so librqbit checks every
//! pack, as every restart did before packs could rest), then once every
//! pack rests (sealed, out of the session), which is how a long-running
//! agent is restarted. Reads are `rchar` of `/proc/PID/io` (page cache or
//! not), less what an idle agent reads at start-up.

use crate::run::{Ctx, NsAgent};
use anyhow::Result;
use shoal_bench::report::{bytes, secs, Table};
use shoal_e2e::netns::Host;
use std::path::Path;
use std::time::Duration;

/// `network.rest_after` for the restarted agents: short, so the bench need
/// not wait the default five minutes for packs to rest.
pub const REST_AFTER: &str = "3s";

/// One restart.
pub struct Restart {
    /// `mirror` or `origin`.
    pub who: String,
    /// Whether the packs rested (sealed) when the agent stopped.
    pub resting_before: bool,
    pub files: u64,
    pub packs: usize,
    pub pack_bytes: u64,
    /// Packs resting once the agent seeds again.
    pub resting: usize,
    /// Bytes librqbit checked (`last_check_bytes`).
    pub checked: u64,
    /// Bytes read, beyond an idle agent's start-up reads.
    pub read: u64,
    /// From the start of the process until every pack seeds or rests.
    pub until_seeding: f64,
    pub peak: u64,
}

impl Restart {
    /// Bytes read at start-up as a share of the pack bytes.
    pub fn read_share(&self) -> f64 {
        self.read as f64 / self.pack_bytes.max(1) as f64
    }
}

/// What an agent with nothing to do reads at start-up (its TLS root
/// certificates, its config): `rchar` of an origin of an empty folder once
/// it has published.
pub fn fixed_reads(ctx: &Ctx, host: &Host, dir: &Path) -> Result<u64> {
    let empty = dir.join("fixed-reads-empty");
    std::fs::create_dir_all(&empty)?;
    let o = NsAgent::origin(ctx, host, &empty, &dir.join("fixed-reads-state"))?;
    o.wait_generation(1, Duration::from_secs(60))?;
    crate::run::sleep(Duration::from_millis(500))?;
    let r = o.read_chars()?;
    o.stop()?;
    Ok(r)
}

/// Restarts `a` as it is, then again once all its packs rest.
pub fn twice(a: &mut NsAgent, who: &str, files: u64, fixed: u64) -> Result<[Restart; 2]> {
    a.add_args(&["--rest-after", REST_AFTER]);
    let first = once(a, who, files, fixed, false)?;
    a.wait("every pack to rest", Duration::from_secs(600), |s| {
        !s.packs.is_empty() && s.packs.iter().all(|p| p.state == "resting")
    })?;
    let second = once(a, who, files, fixed, true)?;
    Ok([first, second])
}

fn once(a: &mut NsAgent, who: &str, files: u64, fixed: u64, resting: bool) -> Result<Restart> {
    a.restart()?;
    let st = a.wait(
        "its packs to seed or rest again",
        Duration::from_secs(1800),
        |s| {
            s.last_check_seconds.is_some()
                && !s.packs.is_empty()
                && s.packs
                    .iter()
                    .all(|p| p.state == "seeding" || p.state == "resting")
        },
    )?;
    let until_seeding = a.started.elapsed().as_secs_f64();
    let read = a.read_chars()?.saturating_sub(fixed);
    Ok(Restart {
        who: who.to_string(),
        resting_before: resting,
        files,
        packs: st.packs.len(),
        pack_bytes: st.packs.iter().map(|p| p.bytes).sum(),
        resting: st.packs.iter().filter(|p| p.state == "resting").count(),
        checked: st.last_check_bytes,
        read,
        until_seeding,
        peak: a.peak_rss()?,
    })
}

/// The restart table.
pub fn table() -> Table {
    Table::new(&[
        "restart",
        "packs when stopped",
        ">files",
        ">pack bytes",
        ">resting after restart",
        ">checked by librqbit",
        ">read at start-up",
        ">read ÷ pack bytes",
        ">until seeding",
        ">peak RSS after restart",
    ])
}

pub fn row(t: &mut Table, r: &Restart) {
    t.row(&[
        r.who.clone(),
        if r.resting_before {
            "resting (sealed)"
        } else {
            "in the session"
        }
        .to_string(),
        r.files.to_string(),
        bytes(r.pack_bytes),
        format!("{} of {}", r.resting, r.packs),
        bytes(r.checked),
        bytes(r.read),
        format!("{:.2} %", 100.0 * r.read_share()),
        secs(r.until_seeding),
        bytes(r.peak),
    ]);
}

/// The method, for the report.
pub fn explain() -> String {
    format!(
        "Each agent is restarted twice with `--rest-after {REST_AFTER}`: first as the sync \
         left it (every pack in librqbit's session, none sealed, so librqbit reads and checks \
         every pack, as every restart did before packs could rest), then once all its packs \
         rest (sealed and out of the session), as a long-running agent is restarted. \"Read at \
         start-up\" is `rchar` from `/proc/PID/io` (every byte the process read, page cache or \
         not) when every pack seeds or rests again, less what an origin of an empty folder \
         reads at start-up (its TLS root certificates and config); \"until seeding\" runs from \
         the start of the process."
    )
}
