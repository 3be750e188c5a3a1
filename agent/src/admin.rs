//! Local admin calls on the Unix socket `<state>/admin.sock` (mode 0600):
//! only the agent's own user (or root) on the same host may call them, and
//! members of `origin.admin_group` when it is set (mode 0660), so an
//! archive's hook user can call `publish`.
//!
//! Protocol: one request line, one reply line.
//! - `publish [force] [wait=SECONDS]` (origin): publish a generation now;
//!   reply `ok <generation>`. A closed publish gate ([`crate::gate`]) is an
//!   error unless `force`; with `wait=` the call waits up to that long for
//!   the gate to open (shown in /status), and a call whose time runs out
//!   leaves /status as it was before the call.
//! - `publish-changes N [force] [wait=SECONDS]` (origin), then N lines of
//!   paths relative to the repository: publish looking only at those
//!   paths; reply as `publish`.
//! - `sync` (mirror): check upstreams now; reply `ok`.
//! - `status`: reply with the /status JSON.
//!
//! Errors reply `error: <message>`.

use crate::Agent;
use anyhow::{Context, Result};
use shoal_config::Role;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Creates the admin socket (before the agent answers on HTTP, so a
/// caller that saw `/status` answer finds the socket too).
pub fn bind(agent: &Agent) -> Result<UnixListener> {
    let path = agent.store.admin_socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot create admin socket {}", path.display()))?;
    match &agent.cfg.origin.admin_group {
        None => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?,
        Some(g) => {
            let group = nix::unistd::Group::from_name(g)
                .with_context(|| format!("cannot look up origin.admin_group '{g}'"))?
                .with_context(|| {
                    format!("origin.admin_group '{g}' does not exist on this host; create it or fix the setting")
                })?;
            nix::unistd::chown(&path, None, Some(group.gid)).with_context(|| {
                format!(
                    "cannot give the admin socket {} to group '{g}'",
                    path.display()
                )
            })?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        }
    }
    Ok(listener)
}

/// Answers admin calls on `listener` (see [`bind`]).
pub async fn serve(agent: Arc<Agent>, listener: UnixListener) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let agent = agent.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(agent, stream).await {
                tracing::warn!(error = %e, "admin call failed");
            }
        });
    }
}

async fn handle(agent: Arc<Agent>, stream: UnixStream) -> Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r);
    reader.read_line(&mut line).await?;
    let mut changes = None;
    let mut words = line.split_whitespace();
    let request = words.next().unwrap_or("").to_string();
    let mut opts = PublishOptions::default();
    if request == "publish-changes" {
        // `publish-changes N [options]`, then N lines, one changed path each.
        let n: usize = words
            .next()
            .and_then(|n| n.parse().ok())
            .context("publish-changes needs a count")?;
        let mut paths = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let mut p = String::new();
            if reader.read_line(&mut p).await? == 0 {
                anyhow::bail!(
                    "publish-changes: the list ended after {} of {n} paths",
                    paths.len()
                );
            }
            paths.push(p.trim_end_matches('\n').to_string());
        }
        changes = Some(paths);
    }
    let call = if changes.is_some() {
        "publish"
    } else {
        request.as_str()
    };
    if call == "publish" {
        opts = match PublishOptions::parse(words) {
            Ok(o) => o,
            Err(e) => {
                w.write_all(format!("error: {e}\n").as_bytes()).await?;
                return Ok(());
            }
        };
    }
    let reply = match (call, agent.cfg.role) {
        ("publish", Role::Origin) => match publish_when_open(&agent, changes, opts).await {
            Ok(g) => format!("ok {g}"),
            Err(e) => {
                if let Some(c) = crate::gate::closed_of(&e) {
                    tracing::info!(reason = %c.summary(), "publish call refused: the gate is closed");
                } else {
                    agent.set_error(&e);
                }
                format!("error: {e:#}")
            }
        },
        ("publish", Role::Mirror) => {
            "error: this agent is a mirror; publish on the origin".to_string()
        }
        ("sync", _) => {
            agent.kick.notify_one();
            "ok".to_string()
        }
        ("status", _) => {
            agent.refresh_pack_status();
            serde_json::to_string(&agent.status_now())?
        }
        (other, _) => format!("error: unknown admin call '{other}'; use publish, sync or status"),
    };
    w.write_all(reply.as_bytes()).await?;
    w.write_all(b"\n").await?;
    Ok(())
}

/// How a publish call treats a closed publish gate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PublishOptions {
    /// Publish even when the gate is closed.
    pub force: bool,
    /// Wait up to this long for the gate to open.
    pub wait: Option<std::time::Duration>,
}

impl PublishOptions {
    /// The words after the call: `force`, `wait=SECONDS`.
    fn parse<'a>(words: impl Iterator<Item = &'a str>) -> Result<PublishOptions> {
        let mut o = PublishOptions::default();
        for w in words {
            if w == "force" {
                o.force = true;
            } else if let Some(secs) = w.strip_prefix("wait=") {
                let secs: f64 = secs
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .with_context(|| format!("publish: '{w}' needs seconds, e.g. wait=60"))?;
                o.wait = Some(std::time::Duration::from_secs_f64(secs));
            } else {
                anyhow::bail!("publish: unknown option '{w}'; use force or wait=SECONDS");
            }
        }
        Ok(o)
    }

    /// The words sent after the call.
    fn words(&self) -> String {
        let mut s = String::new();
        if self.force {
            s.push_str(" force");
        }
        if let Some(w) = self.wait {
            s.push_str(&format!(" wait={}", w.as_secs_f64()));
        }
        s
    }
}

/// Publishes; with `opts.wait`, a closed gate is waited on (looking again
/// when it may have opened) until that time has passed.
async fn publish_when_open(
    agent: &Arc<Agent>,
    changes: Option<Vec<String>>,
    opts: PublishOptions,
) -> Result<u64> {
    let deadline = opts.wait.map(|w| tokio::time::Instant::now() + w);
    let before = {
        let s = agent.status.lock().unwrap();
        (s.state.clone(), s.publish_waiting.clone())
    };
    loop {
        let waits = opts.wait.is_some();
        let r = crate::origin::publish_changes(agent, changes.clone(), opts.force, waits).await;
        let (Err(e), Some(deadline)) = (&r, deadline) else {
            return r;
        };
        let Some(c) = crate::gate::closed_of(e) else {
            return r;
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            // Nobody waits any more: /status says what it said before the
            // call (the timer's own wait, if it was waiting).
            let mut s = agent.status.lock().unwrap();
            if s.state == "waiting" {
                (s.state, s.publish_waiting) = before;
            }
            return r;
        }
        let nap = c.retry_after(crate::gate::now_ns()).min(deadline - now);
        tracing::debug!(reason = %c.summary(), "publish call waits for the gate");
        tokio::time::sleep(nap).await;
    }
}

/// Client side: asks the origin whose state dir is `state` to publish
/// (looking only at `paths`, relative to its repository, when given).
pub async fn publish(
    state: &Path,
    paths: Option<&[String]>,
    opts: PublishOptions,
) -> Result<String> {
    let Some(paths) = paths else {
        return call(state, &format!("publish{}", opts.words())).await;
    };
    if let Some(bad) = paths.iter().find(|p| p.contains('\n')) {
        anyhow::bail!("change list: a path holds a line break: {bad:?}");
    }
    let mut request = format!("publish-changes {}{}", paths.len(), opts.words());
    for p in paths {
        request.push('\n');
        request.push_str(p);
    }
    call(state, &request).await
}

/// Client side: sends one call to the agent whose state dir is `state`.
pub async fn call(state: &Path, request: &str) -> Result<String> {
    let path = crate::store::Store::new(state).admin_socket();
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the agent's admin socket {} ({e}); is shoal-agent running with \
             --state {}?",
            path.display(),
            state.display()
        )
    })?;
    let (r, mut w) = stream.into_split();
    w.write_all(request.as_bytes()).await?;
    w.write_all(b"\n").await?;
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    let line = line.trim_end().to_string();
    if let Some(e) = line.strip_prefix("error: ") {
        anyhow::bail!("{e}");
    }
    Ok(line)
}
