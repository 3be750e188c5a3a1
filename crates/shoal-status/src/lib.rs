//! The JSON document served by every `shoal-agent` at `GET /status`.
//!
//! The agent serializes these types and the `shoal` CLI (`shoal status`,
//! `shoal demo`) deserializes them, so both sides agree on one shape.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything an operator wants to know about one agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// `origin` or `mirror`.
    pub role: String,
    /// The agent's name (trace file name).
    pub name: String,
    /// Agent version.
    pub version: String,
    /// HTTP URL other agents use for this one.
    pub url: String,
    /// BitTorrent listen address.
    pub peer_addr: String,
    /// Repository profile.
    pub profile: String,
    /// The generation the live tree holds completely (origin: last published).
    pub generation_applied: u64,
    /// The newest generation this agent has seen a valid signed head for.
    pub generation_known: u64,
    /// Unix time the applied generation was created by the origin.
    pub generation_created: i64,
    /// Unix time the applied generation expires.
    pub generation_expires: i64,
    /// What the agent is doing: `idle`, `publishing`, `fetching-manifest`,
    /// `downloading`, `verifying`, `applying`, `error`, (origin) `waiting`
    /// while the publish gate holds a publish back (see `publish_waiting`),
    /// or (mirror) `upstream-unreachable` when it serves the newest
    /// generation it can verify but no upstream answers.
    pub state: String,
    /// Seconds the last sync took: mirror, from starting to fetch the new
    /// generation's manifest to applied; origin, the publish.
    pub last_sync_seconds: Option<f64>,
    /// Unix time of the last successful sync (mirror: a generation applied,
    /// or an upstream confirmed the one held is the newest) or publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<i64>,
    /// Syncs (or publishes) that failed since the agent started.
    #[serde(default)]
    pub sync_failures: u64,
    /// Origin: packs whose feeder (the one mirror the origin sends the pack
    /// to) went quiet or stopped progressing, so another mirror took over,
    /// since the agent started.
    #[serde(default)]
    pub feeder_handovers: u64,
    /// Documents and packs refused from upstreams since the agent started,
    /// by kind: `head`, `manifest`, `delta`, `rollback`, `pack`.
    #[serde(default)]
    pub refusals: BTreeMap<String, u64>,
    /// The last error, with what to do about it; `None` once a sync succeeds.
    pub last_error: Option<String>,
    /// Mirror: why no upstream could be asked, while this agent still holds
    /// the newest generation it can verify (serving it is not an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_error: Option<String>,
    /// Origin: why the publish timer is holding back (an archive update's
    /// lock file, or files changed within `origin.quiet_period`), e.g.
    /// `Archive-Update-in-Progress-host exists since 2026-11-30T00:12:00Z`.
    /// `None` when nothing holds it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_waiting: Option<String>,
    /// Number of files in the applied manifest.
    pub files: u64,
    /// Total bytes of the applied manifest.
    pub bytes: u64,
    /// Deletions waiting for their grace period to pass.
    pub pending_deletions: u64,
    /// Other agents known to this one.
    pub peers: Vec<PeerStatus>,
    /// Bytes received, by source class: `origin`, `mirrors`, `other`.
    pub bytes_down: BTreeMap<String, u64>,
    /// Bytes received per peer agent name.
    pub bytes_down_by_peer: BTreeMap<String, u64>,
    /// Bytes sent, by destination class.
    pub bytes_up: BTreeMap<String, u64>,
    /// Per-pack state.
    pub packs: Vec<PackStatus>,
    /// Seconds librqbit spent checking pack data when packs were (re)added.
    pub last_check_seconds: Option<f64>,
    /// Bytes checked in that time.
    pub last_check_bytes: u64,
    /// Resting packs (state `resting`: complete, out of the BitTorrent
    /// session) woken because a peer needed them, since the agent started.
    #[serde(default)]
    pub packs_woken: u64,
    /// Mirror: restarts of downloading packs since the agent started, by
    /// reason: `early` (nothing arrived just after it was added), `idle`
    /// (no progress for a while) and `done` (once when it finished, so the
    /// mirrors relaying it through this one see it complete). A restart
    /// wakes librqbit's requesters, which sleep while a peer has nothing
    /// new for them.
    #[serde(default)]
    pub pack_restarts: BTreeMap<String, u64>,
    /// Resident memory of the agent process when this was read (`VmRSS`),
    /// in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// The most resident memory the agent process has had since it started
    /// (`VmHWM`): the peak of its publishes or syncs, in bytes.
    #[serde(default)]
    pub memory_peak_bytes: u64,
}

/// Another agent this one knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    pub role: String,
    pub url: String,
    pub peer_addr: String,
    /// Newest generation the peer reported.
    pub generation: u64,
    /// Seconds since it was last heard from.
    pub last_seen_seconds: u64,
}

/// One pack (torrent) this agent holds or is fetching.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PackStatus {
    pub id: u64,
    pub info_hash: String,
    pub files: u64,
    pub bytes: u64,
    pub have_bytes: u64,
    /// `checking`, `downloading`, `seeding`, `paused`, `error`, or
    /// `resting` (complete and out of the BitTorrent session until a peer
    /// needs it).
    pub state: String,
    pub uploaded_bytes: u64,
    pub downloaded_bytes: u64,
    pub peers: u64,
    /// While downloading: what the pack waits on (no progress, retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shoal status` reads older agents too: counters they do not report
    /// deserialize as zero.
    #[test]
    fn older_agents_status_still_reads() {
        let mut v = serde_json::to_value(Status::default()).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in ["last_success", "sync_failures", "refusals"] {
            o.remove(k);
        }
        let st: Status = serde_json::from_value(v).unwrap();
        assert_eq!(st.sync_failures, 0);
        assert!(st.refusals.is_empty() && st.last_success.is_none());
    }

    /// Found by shoal-fuzz (status target): with serde_json's default
    /// float parsing these read back one unit in the last place off from
    /// what was written, so `shoal status` did not show exactly what the
    /// agent reported. The workspace enables `float_roundtrip`.
    #[test]
    fn floats_read_back_exactly() {
        for x in [12.25777777777778, 12.214748364821476, 0.1, 1e-300, f64::MAX] {
            let s = Status {
                last_sync_seconds: Some(x),
                last_check_seconds: Some(x / 3.0),
                ..Status::default()
            };
            let text = serde_json::to_string(&s).unwrap();
            let back: Status = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s, "{text}");
        }
        // the fuzzer's input: a long decimal, read once, then written and read again
        let long = format!("{{\"last_sync_seconds\":12.25{}}}", "7".repeat(160));
        let v: serde_json::Value = serde_json::from_str(&long).unwrap();
        let x = v["last_sync_seconds"].as_f64().unwrap();
        let again: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
        assert_eq!(again.to_bits(), x.to_bits());
    }
}
