//! The HTTP endpoint every agent serves.
//!
//! | route | what |
//! |---|---|
//! | `GET /status` | JSON [`shoal_status::Status`] |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/head` | newest signed head |
//! | `GET /v1/manifest/{G}` | signed manifest of generation G (checkpoint) |
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
    let st = a.status.lock().unwrap().clone();
    Json(st).into_response()
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
/// every agent this one knows (compact form). A query librqbit or another
/// client could not have sent gets a BEP 3 failure reason.
async fn tracker(State(a): State<Arc<Agent>>, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = shoal_pack::tracker::parse_announce(q.as_deref().unwrap_or("")) {
        tracing::debug!(error = %e, "tracker query refused");
        return (
            [(header::CONTENT_TYPE, "text/plain")],
            shoal_pack::tracker::failure_response(&e.to_string()),
        )
            .into_response();
    }
    let mut addrs = a.peers.lock().unwrap().peer_addrs();
    if let Some(me) = a.cfg.peer_listen() {
        addrs.push(me);
    }
    (
        [(header::CONTENT_TYPE, "text/plain")],
        tracker_response(&addrs, a.cfg.network.announce_interval),
    )
        .into_response()
}

async fn metrics(State(a): State<Arc<Agent>>) -> Response {
    let st = a.status.lock().unwrap().clone();
    let mut m = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "shoal_generation_applied",
        "Generation the live tree holds completely.",
        st.generation_applied as f64,
    );
    gauge(
        "shoal_generation_known",
        "Newest generation seen with a valid signature.",
        st.generation_known as f64,
    );
    gauge(
        "shoal_generation_created_timestamp_seconds",
        "When the origin created the applied generation.",
        st.generation_created as f64,
    );
    gauge(
        "shoal_generation_expires_timestamp_seconds",
        "When the applied generation expires.",
        st.generation_expires as f64,
    );
    gauge(
        "shoal_files",
        "Files in the applied generation.",
        st.files as f64,
    );
    gauge(
        "shoal_bytes",
        "Bytes in the applied generation.",
        st.bytes as f64,
    );
    gauge(
        "shoal_pending_deletions",
        "Removals waiting for their grace period.",
        st.pending_deletions as f64,
    );
    gauge("shoal_peers", "Other agents known.", st.peers.len() as f64);
    gauge(
        "shoal_up",
        "1 if the last sync or publish succeeded.",
        if st.last_error.is_none() { 1.0 } else { 0.0 },
    );
    gauge(
        "shoal_upstream_reachable",
        "Mirror: 0 while no upstream answers (the mirror keeps serving the newest generation it can verify).",
        if st.upstream_error.is_none() { 1.0 } else { 0.0 },
    );
    if let Some(s) = st.last_sync_seconds {
        gauge(
            "shoal_last_sync_seconds",
            "Seconds the last sync or publish took.",
            s,
        );
    }
    if let Some(s) = st.last_check_seconds {
        gauge(
            "shoal_last_check_seconds",
            "Seconds librqbit spent checking packs when they were added.",
            s,
        );
    }
    let _ = writeln!(m, "# HELP shoal_received_bytes_total Bytes received over BitTorrent by source.\n# TYPE shoal_received_bytes_total counter");
    for src in ["origin", "mirrors", "other"] {
        let v = st.bytes_down.get(src).copied().unwrap_or(0);
        let _ = writeln!(m, "shoal_received_bytes_total{{source=\"{src}\"}} {v}");
    }
    let _ = writeln!(m, "# HELP shoal_sent_bytes_total Bytes sent over BitTorrent by destination.\n# TYPE shoal_sent_bytes_total counter");
    for dst in ["origin", "mirrors", "other"] {
        let v = st.bytes_up.get(dst).copied().unwrap_or(0);
        let _ = writeln!(m, "shoal_sent_bytes_total{{destination=\"{dst}\"}} {v}");
    }
    let _ = writeln!(
        m,
        "# HELP shoal_packs Packs by state.\n# TYPE shoal_packs gauge"
    );
    for state in ["checking", "downloading", "seeding", "paused", "error"] {
        let n = st.packs.iter().filter(|p| p.state == state).count();
        let _ = writeln!(m, "shoal_packs{{state=\"{state}\"}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m).into_response()
}
