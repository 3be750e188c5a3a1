//! The `sync` step: wait until a mirror reports the origin's current
//! generation (read from the origin's `/status` when this machine reaches
//! it, otherwise the newest generation the mirror learns from its
//! upstreams). An origin only reports the generation it publishes.

use super::agent::{agent_alive, log_tail, remote_status};
use super::args::ManagerChoice;
use super::plan::Plan;
use super::ssh::Remote;
use super::ui::Step;
use crate::status::{fetch_status, human_bytes};
use shoal_config::{format_duration, Role};
use shoal_status::Status;
use std::time::{Duration, Instant};

/// What the step waits with.
pub struct Wait<'a> {
    pub plan: &'a Plan,
    pub manager: ManagerChoice,
    pub http: &'a reqwest::Client,
    pub timeout: Duration,
}

/// Runs the step; returns the GENERATION column of the summary and the
/// line that ends the step.
pub async fn sync(remote: &Remote, st: &Step, w: &Wait<'_>) -> Result<(String, String), String> {
    if w.plan.role == Role::Origin {
        let g = remote_status(remote, w.plan).await?.generation_applied;
        return Ok((format!("{g}"), format!("origin at generation {g}")));
    }
    let origin_url = w.plan.origin_url.clone().unwrap_or_default();
    let (target, from) = target(w.http, &origin_url).await;
    if target == Some(0) {
        return Ok((
            "0".to_string(),
            "the origin has not published a generation yet; nothing to wait for".to_string(),
        ));
    }
    st.note(match target {
        Some(t) => format!(
            "waiting for generation {t} from {from} (timeout {})",
            format_duration(w.timeout)
        ),
        None => format!(
            "waiting for the newest generation known to {from} (timeout {})",
            format_duration(w.timeout)
        ),
    });
    wait_generation(remote, st, w, target).await
}

/// The generation to wait for: the origin's newest, read from here, and
/// where it comes from (for the step's note).
async fn target(http: &reqwest::Client, origin_url: &str) -> (Option<u64>, String) {
    match fetch_status(http, origin_url).await {
        Ok(s) => (
            Some(s.generation_applied),
            format!("the origin {origin_url}"),
        ),
        Err(e) => (
            None,
            format!("the mirror's upstreams (this machine cannot read the origin: {e})"),
        ),
    }
}

/// Whether a mirror's status has reached `target` (or, without one, the
/// newest generation it knows).
fn reached(s: &Status, target: Option<u64>) -> bool {
    match target {
        Some(t) => s.generation_applied >= t,
        None => s.generation_known > 0 && s.generation_applied >= s.generation_known,
    }
}

/// Polls the mirror's status every second until it reaches the target,
/// the agent stops, or the timeout passes.
async fn wait_generation(
    remote: &Remote,
    st: &Step,
    w: &Wait<'_>,
    target: Option<u64>,
) -> Result<(String, String), String> {
    let start = Instant::now();
    let deadline = start + w.timeout;
    let mut last: Option<Status> = None;
    let mut last_err = String::new();
    let mut failures = 0;
    let mut last_note = Instant::now();
    loop {
        match remote_status(remote, w.plan).await {
            Ok(s) if reached(&s, target) => return Ok(arrived(&s, target, start)),
            Ok(s) => {
                failures = 0;
                last = Some(s);
            }
            Err(e) => {
                failures += 1;
                last_err = e;
                if failures >= 3 && !agent_alive(remote, w.plan, w.manager).await {
                    let log = log_tail(remote, w.plan, w.manager).await;
                    return Err(format!("the agent stopped while syncing ({last_err}){log}"));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(not_reached(target, last.as_ref(), &last_err, w.timeout));
        }
        let quiet = !st.is_tty() && last_note.elapsed() < Duration::from_secs(10);
        if let (Some(s), false) = (&last, quiet) {
            last_note = Instant::now();
            st.note(format!(
                "generation {} of {} ({}), {}s",
                s.generation_applied,
                target.unwrap_or(s.generation_known),
                s.state,
                start.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The summary column and the step's line once the mirror got there.
fn arrived(s: &Status, target: Option<u64>, start: Instant) -> (String, String) {
    let g = s.generation_applied;
    let of = target.unwrap_or(s.generation_known);
    (
        format!("{g}/{of}"),
        format!(
            "generation {g} applied ({} files, {}; origin at {of}) after {:.1}s",
            s.files,
            human_bytes(s.bytes),
            start.elapsed().as_secs_f64()
        ),
    )
}

/// The error when the timeout passed: what was awaited and where the mirror is.
fn not_reached(
    target: Option<u64>,
    last: Option<&Status>,
    last_err: &str,
    timeout: Duration,
) -> String {
    let what = match target {
        Some(t) => format!("generation {t}"),
        None => "the newest generation".to_string(),
    };
    let now = match last {
        Some(s) => format!(
            "the mirror has generation {} (knows {}, state {}); last error: {}",
            s.generation_applied,
            s.generation_known,
            s.state,
            s.last_error.as_deref().unwrap_or("none")
        ),
        None => format!("the mirror's status could not be read ({last_err})"),
    };
    format!(
        "sync not reached: {what} not applied within {}: {now}. Check that the \
         mirror reaches its upstreams and that origin_public_key is the origin's key; \
         or raise --timeout",
        format_duration(timeout)
    )
}
