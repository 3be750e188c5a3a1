//! The HTTP endpoint every agent serves.
//!
//! | route | what |
//! |---|---|
//! | `GET /status` | JSON [`shoal_status::Status`] |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/head` | newest signed head |
//! | `GET /v1/manifest/{G}` | signed manifest root of generation G (checkpoint) |
//! | `GET /v1/chunk/{sha256}` | a manifest chunk, zstd-compressed, named by the SHA-256 of its uncompressed bytes |
//! | `GET /v1/delta/{G}` | signed delta G → G+1 |
//! | `GET /v1/torrent/{info-hash}` | a pack's `.torrent` |
//! | `POST /v1/announce` | exchange peer tables ([`crate::peers`]) |
//! | `POST /v1/notify` | "a new generation exists": a mirror checks its upstreams now |
//! | `GET /announce` | BitTorrent tracker listing known agents |
//!
//! Everything served is either public status or signed, so any agent may
//! relay it. Admin calls are not here: they take the Unix socket
//! ([`crate::admin`]).

use crate::peers::{tracker_response, SignedPeer};
use crate::Agent;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::fmt::Write;
use std::sync::Arc;

pub async fn serve(agent: Arc<Agent>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/head", get(head))
        .route("/v1/manifest/{generation}", get(manifest))
        .route("/v1/chunk/{sha256}", get(chunk))
        .route("/v1/delta/{from}", get(delta))
        .route("/v1/torrent/{info_hash}", get(torrent))
        .route("/v1/announce", post(announce))
        .route("/v1/notify", post(notify))
        .route("/announce", get(tracker))
        .with_state(agent);
    axum::serve(listener, app).await?;
    Ok(())
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

async fn file(path: std::path::PathBuf, what: String) -> Response {
    match tokio::fs::read(&path).await {
        Ok(b) => ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
        Err(_) => not_found(what),
    }
}

async fn status(State(a): State<Arc<Agent>>) -> Response {
    Json(a.status_now()).into_response()
}

async fn head(State(a): State<Arc<Agent>>) -> Response {
    file(a.store.head(), "no generation published yet".into()).await
}

async fn manifest(State(a): State<Arc<Agent>>, Path(g): Path<String>) -> Response {
    match g.parse::<u64>() {
        Ok(g) => file(a.store.manifest(g), format!("manifest {g} not held here")).await,
        Err(_) => (StatusCode::BAD_REQUEST, "generation must be a number\n").into_response(),
    }
}

/// Content-addressed: the fetcher decompresses the file and checks the
/// bytes against the id, so no signature is needed.
async fn chunk(State(a): State<Arc<Agent>>, Path(id): Path<String>) -> Response {
    match shoal_manifest::Sha256Hash::from_hex(&id) {
        Some(sha) if id.len() == 64 && !id.bytes().any(|b| b.is_ascii_uppercase()) => {
            file(a.store.chunk(&sha), format!("chunk {id} not held here")).await
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "chunk id must be 64 lower-case hex digits\n",
        )
            .into_response(),
    }
}

async fn delta(State(a): State<Arc<Agent>>, Path(g): Path<String>) -> Response {
    match g.parse::<u64>() {
        Ok(g) => file(a.store.delta(g), format!("delta from {g} not held here")).await,
        Err(_) => (StatusCode::BAD_REQUEST, "generation must be a number\n").into_response(),
    }
}

async fn torrent(State(a): State<Arc<Agent>>, Path(ih): Path<String>) -> Response {
    if ih.len() != 40
        || !ih
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return (
            StatusCode::BAD_REQUEST,
            "info hash must be 40 lower-case hex digits\n",
        )
            .into_response();
    }
    file(a.store.torrent(&ih), format!("torrent {ih} not held here")).await
}

async fn announce(State(a): State<Arc<Agent>>, body: Bytes) -> Response {
    let p: SignedPeer = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad announce: {e}\n")).into_response(),
    };
    if let Err(e) = a.learn_peer(p) {
        tracing::debug!(error = %e, "announce refused");
        return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
    }
    let mut list = vec![a.self_info()];
    list.extend(a.peers.lock().unwrap().signed());
    Json(list).into_response()
}

/// Push: another agent says generation `g` exists. A mirror behind it
/// checks its upstreams now instead of at the next poll; that is all it
/// does (it fetches and verifies a signed head, as a poll would). An origin
/// ignores it: only its admin socket and timer make it publish.
async fn notify(State(a): State<Arc<Agent>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Notice {
        generation: u64,
    }
    let n: Notice = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad notify: {e}\n")).into_response(),
    };
    if a.cfg.role == shoal_config::Role::Mirror {
        let applied = a.status.lock().unwrap().generation_applied;
        if n.generation > applied {
            a.kick.notify_one();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The BitTorrent tracker: a strict announce query (BEP 3), answered with
/// the agents the asker may fetch from (compact form). The origin is listed
/// only by the origin itself, and only to the mirror [`shoal_swarm`] makes
/// the pack's feeder (or to a client that is not a Shoal mirror); so the
/// origin sends each pack about once and mirrors trade the rest. A query
/// librqbit or another client could not have sent gets a BEP 3 failure
/// reason.
async fn tracker(State(a): State<Arc<Agent>>, RawQuery(q): RawQuery) -> Response {
    let q = match shoal_pack::tracker::parse_announce(q.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            tracing::debug!(error = %e, "tracker query refused");
            return (
                [(header::CONTENT_TYPE, "text/plain")],
                shoal_pack::tracker::failure_response(&e.to_string()),
            )
                .into_response();
        }
    };
    let known = a.peers.lock().unwrap().list();
    let asker = q
        .agent
        .as_deref()
        .and_then(|n| {
            known
                .iter()
                .find(|(p, _)| p.name == n && p.role == "mirror")
        })
        .map(|(p, _)| p.clone());
    let mut addrs: Vec<std::net::SocketAddr> = shoal_swarm::relay_peers(
        known
            .iter()
            .filter(|(p, _)| Some(&p.name) != asker.as_ref().map(|x| &x.name))
            .map(|(p, _)| (p.role.as_str(), p.peer_addr)),
    );
    let me = a.cfg.peer_listen();
    let ih = hex::encode(q.info_hash);
    let asker_addr = asker.as_ref().map(|p| p.peer_addr);
    match a.cfg.role {
        shoal_config::Role::Origin => {
            if schedule_origin(&a, &ih, &q, asker.as_ref().map(|p| p.name.as_str())) {
                if asker.is_none() {
                    a.bt.listed_to_outsider(&ih);
                }
                wake_for(&a, &ih, q.left, asker_addr).await;
                addrs.extend(me);
            }
        }
        shoal_config::Role::Mirror => {
            wake_for(&a, &ih, q.left, asker_addr).await;
            addrs.extend(me);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain")],
        tracker_response(&addrs, a.cfg.network.announce_interval),
    )
        .into_response()
}

/// How long a tracker answer waits for a resting pack to wake (librqbit
/// checks it first); the woken pack dials the asker anyway.
const WAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Wakes the pack `ih` if it rests here and the asker still lacks bytes
/// of it ([`crate::rest`]).
async fn wake_for(a: &Arc<Agent>, ih: &str, left: u64, dial: Option<std::net::SocketAddr>) {
    if left == 0 || a.bt.resting_by_hash(ih).is_none() {
        return;
    }
    let (a2, ih2) = (a.clone(), ih.to_string());
    let job = tokio::spawn(async move {
        if let Err(e) = crate::rest::wake(&a2, &ih2, dial).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot wake a resting pack");
        }
    });
    let _ = tokio::time::timeout(WAKE_WAIT, job).await;
}

/// The origin's part of a tracker answer: does `asker` get the origin for
/// the pack it asks about? Packs the origin does not hold (seeding or
/// resting) are not scheduled (it has nothing to give).
fn schedule_origin(
    a: &Agent,
    ih: &str,
    q: &shoal_pack::tracker::AnnounceQuery,
    asker: Option<&str>,
) -> bool {
    let torrents = a.bt.all();
    let held = match torrents.iter().find(|t| t.info_hash == ih) {
        Some(t) => Some((t.id, t.handle.stats().total_bytes)),
        None => a.bt.resting_by_hash(ih).map(|r| (r.id, r.bytes)),
    };
    let Some((id, size)) = held else {
        return false;
    };
    let params = shoal_swarm::Params::for_interval(a.cfg.network.announce_interval.as_secs_f64());
    let live = a.live_mirrors(params.dead_after);
    let mut s = a.schedule.lock().unwrap();
    if s.len() > torrents.len() + 64 {
        s.retain(&|k| torrents.iter().any(|t| t.info_hash == k));
    }
    let ask = shoal_swarm::Announce {
        pack: ih,
        size,
        asker,
        left: q.left,
    };
    let (origin, handover) = s.ask(&ask, &live, a.clock(), &params);
    match handover {
        Some(shoal_swarm::Handover::Assigned { to }) => {
            tracing::debug!(pack = id, feeder = %to, "pack assigned a feeder")
        }
        Some(shoal_swarm::Handover::Moved { from, to, why }) => {
            a.status.lock().unwrap().feeder_handovers += 1;
            tracing::info!(pack = id, from = %from, to = %to, "pack's feeder {why}: moved")
        }
        None => {}
    }
    origin
}

/// Kinds of refusal counted in `shoal_refusals_total` (all always shown).
pub const REFUSAL_KINDS: &[&str] = &["head", "manifest", "delta", "rollback", "pack"];

/// The Prometheus text of a status (names follow Prometheus practice:
/// base units, `_total` counters, `_timestamp_seconds`, `_info`).
pub fn metrics_text(st: &shoal_status::Status) -> String {
    let mut m = String::new();
    let head = |m: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let gauge = |m: &mut String, name: &str, help: &str, v: f64| {
        head(m, name, "gauge", help);
        let _ = writeln!(m, "{name} {v}");
    };
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let _ = writeln!(
        m,
        "# HELP shoal_build_info The agent's version and role (always 1).\n# TYPE shoal_build_info gauge\n\
         shoal_build_info{{version=\"{}\",role=\"{}\"}} 1",
        esc(&st.version),
        esc(&st.role)
    );
    gauge(
        &mut m,
        "shoal_generation_applied",
        "Generation the live tree holds completely.",
        st.generation_applied as f64,
    );
    gauge(
        &mut m,
        "shoal_generation_known",
        "Newest generation seen with a valid signature.",
        st.generation_known as f64,
    );
    gauge(
        &mut m,
        "shoal_generation_created_timestamp_seconds",
        "When the origin created the applied generation.",
        st.generation_created as f64,
    );
    gauge(
        &mut m,
        "shoal_generation_expires_timestamp_seconds",
        "When the applied generation expires.",
        st.generation_expires as f64,
    );
    gauge(
        &mut m,
        "shoal_generation_files",
        "Files in the applied generation.",
        st.files as f64,
    );
    gauge(
        &mut m,
        "shoal_generation_bytes",
        "Bytes in the applied generation.",
        st.bytes as f64,
    );
    gauge(
        &mut m,
        "shoal_pending_deletions",
        "Removals waiting for their grace period.",
        st.pending_deletions as f64,
    );
    gauge(
        &mut m,
        "shoal_peers",
        "Other agents known.",
        st.peers.len() as f64,
    );
    gauge(
        &mut m,
        "shoal_memory_resident_bytes",
        "Resident memory of the agent process.",
        st.memory_bytes as f64,
    );
    gauge(
        &mut m,
        "shoal_memory_peak_bytes",
        "The most resident memory the agent process has had since it started (VmHWM).",
        st.memory_peak_bytes as f64,
    );
    gauge(
        &mut m,
        "shoal_up",
        "1 unless the last sync or publish failed (serving the newest verifiable generation while no upstream answers is up).",
        if st.last_error.is_none() { 1.0 } else { 0.0 },
    );
    gauge(
        &mut m,
        "shoal_upstream_reachable",
        "Mirror: 0 while no upstream answers (the mirror keeps serving the newest generation it can verify).",
        if st.upstream_error.is_none() { 1.0 } else { 0.0 },
    );
    if let Some(s) = st.last_sync_seconds {
        gauge(
            &mut m,
            "shoal_last_sync_duration_seconds",
            "How long the last sync took (mirror: manifest fetch to applied) or the last publish.",
            s,
        );
    }
    if let Some(t) = st.last_success {
        gauge(
            &mut m,
            "shoal_last_success_timestamp_seconds",
            "When the last sync or publish succeeded.",
            t as f64,
        );
    }
    if let Some(s) = st.last_check_seconds {
        gauge(
            &mut m,
            "shoal_last_check_duration_seconds",
            "Seconds librqbit spent checking packs when they were added.",
            s,
        );
    }
    head(
        &mut m,
        "shoal_sync_failures_total",
        "counter",
        "Syncs or publishes that failed since the agent started.",
    );
    let _ = writeln!(m, "shoal_sync_failures_total {}", st.sync_failures);
    head(
        &mut m,
        "shoal_packs_woken_total",
        "counter",
        "Resting packs woken because a peer needed them.",
    );
    let _ = writeln!(m, "shoal_packs_woken_total {}", st.packs_woken);
    if st.role == "mirror" {
        head(
            &mut m,
            "shoal_pack_restarts_total",
            "counter",
            "Restarts of downloading packs, by reason (early, idle, done), to wake librqbit's requesters.",
        );
        for r in ["early", "idle", "done"] {
            let v = st.pack_restarts.get(r).copied().unwrap_or(0);
            let _ = writeln!(m, "shoal_pack_restarts_total{{reason=\"{r}\"}} {v}");
        }
    }
    if st.role == "origin" {
        head(
            &mut m,
            "shoal_feeder_handovers_total",
            "counter",
            "Packs whose feeder went quiet or stopped progressing, so another mirror took over.",
        );
        let _ = writeln!(m, "shoal_feeder_handovers_total {}", st.feeder_handovers);
    }
    head(
        &mut m,
        "shoal_refusals_total",
        "counter",
        "Documents or packs refused from upstreams, by kind.",
    );
    let mut kinds: Vec<&str> = REFUSAL_KINDS.to_vec();
    for k in st.refusals.keys() {
        if !kinds.contains(&k.as_str()) {
            kinds.push(k);
        }
    }
    for k in kinds {
        let v = st.refusals.get(k).copied().unwrap_or(0);
        let _ = writeln!(m, "shoal_refusals_total{{kind=\"{}\"}} {v}", esc(k));
    }
    head(
        &mut m,
        "shoal_received_bytes_total",
        "counter",
        "Bytes received over BitTorrent by source.",
    );
    for src in ["origin", "mirrors", "other"] {
        let v = st.bytes_down.get(src).copied().unwrap_or(0);
        let _ = writeln!(m, "shoal_received_bytes_total{{source=\"{src}\"}} {v}");
    }
    head(
        &mut m,
        "shoal_sent_bytes_total",
        "counter",
        "Bytes sent over BitTorrent by destination.",
    );
    for dst in ["origin", "mirrors", "other"] {
        let v = st.bytes_up.get(dst).copied().unwrap_or(0);
        let _ = writeln!(m, "shoal_sent_bytes_total{{destination=\"{dst}\"}} {v}");
    }
    head(&mut m, "shoal_packs", "gauge", "Packs by state.");
    for state in [
        "checking",
        "downloading",
        "seeding",
        "resting",
        "paused",
        "error",
    ] {
        let n = st.packs.iter().filter(|p| p.state == state).count();
        let _ = writeln!(m, "shoal_packs{{state=\"{state}\"}} {n}");
    }
    m
}

async fn metrics(State(a): State<Arc<Agent>>) -> Response {
    let st = a.status_now();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&st),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_and_labels() {
        let mut st = shoal_status::Status {
            role: "mirror".into(),
            version: "1.2.3".into(),
            last_sync_seconds: Some(2.5),
            last_success: Some(1_700_000_000),
            sync_failures: 3,
            memory_bytes: 50 << 20,
            memory_peak_bytes: 80 << 20,
            ..Default::default()
        };
        st.refusals.insert("head".into(), 2);
        let m = metrics_text(&st);
        assert!(
            m.contains("shoal_build_info{version=\"1.2.3\",role=\"mirror\"} 1"),
            "{m}"
        );
        assert!(m.contains("shoal_sync_failures_total 3"), "{m}");
        assert!(m.contains("shoal_refusals_total{kind=\"head\"} 2"), "{m}");
        assert!(m.contains("shoal_refusals_total{kind=\"pack\"} 0"), "{m}");
        assert!(m.contains("shoal_last_sync_duration_seconds 2.5"), "{m}");
        assert!(m.contains("shoal_memory_resident_bytes 52428800\n"), "{m}");
        assert!(m.contains("shoal_memory_peak_bytes 83886080\n"), "{m}");
        assert!(
            m.contains("shoal_last_success_timestamp_seconds 1700000000"),
            "{m}"
        );
        for old in ["shoal_files ", "shoal_bytes ", "shoal_last_sync_seconds"] {
            assert!(!m.contains(old), "{old} in {m}");
        }
        // Every sample has HELP and TYPE first.
        for line in m.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(m.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
