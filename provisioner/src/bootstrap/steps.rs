//! One host, step by step: `connect`, then for each of its agents (one, or
//! one per repository of a multi-repository site, one after the other over
//! the same connection) `check`, `binary`, `config`, `unit`, `service`,
//! `sync`, in that order. Each step is a progress line and, when it fails,
//! an error that names the host (and repository) and the step; the work of
//! each lives in the module named after it.

use super::args::ManagerChoice;
use super::binary::LocalBinary;
use super::check::{check_facts, check_origin_key, check_user};
use super::facts::{self, Facts};
use super::plan::Plan;
use super::service::{self, Service};
use super::ssh::{self, Remote, SshOptions};
use super::summary::Outcome;
use super::sync::{self, Wait};
use super::ui::{Step, Ui};
use super::upload;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings shared by every host of a run.
pub struct Ctx {
    pub ui: Ui,
    pub ssh: SshOptions,
    pub binaries: Vec<LocalBinary>,
    pub min_free: u64,
    pub timeout: Duration,
    pub no_wait: bool,
    pub dry_run: bool,
    pub http: reqwest::Client,
}

/// A failure on one host, naming the host and the step.
#[derive(Debug, Clone)]
pub struct HostError {
    pub host: String,
    pub step: &'static str,
    pub message: String,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: step {} failed: {}",
            self.host, self.step, self.message
        )
    }
}

type StepResult<T> = Result<T, HostError>;

/// One agent's run: what it was told and what it has done so far.
struct HostRun<'a> {
    ctx: &'a Ctx,
    plan: &'a Plan,
    /// An earlier agent of this host changed the binary they share (so
    /// this one restarts too).
    binary_changed_before: bool,
    changed: Vec<String>,
    service: String,
    generation: String,
}

/// Bootstraps the agents of one host (`plans`, all with its destination)
/// over one SSH connection, one after the other; never fails, each outcome
/// says how its agent ended.
pub async fn bootstrap_host(ctx: Arc<Ctx>, plans: Vec<Plan>) -> Vec<Outcome> {
    let started = Instant::now();
    let remote = match connect(&ctx, &plans[0]).await {
        Ok(r) => r,
        Err(msg) => {
            return plans
                .iter()
                .map(|p| {
                    let error = HostError {
                        host: p.label.clone(),
                        step: "connect",
                        message: msg.clone(),
                    };
                    outcome(
                        p,
                        Vec::new(),
                        String::new(),
                        "-".into(),
                        started,
                        Some(error),
                    )
                })
                .collect();
        }
    };
    let mut outcomes = Vec::new();
    let mut binary_changed = false;
    for plan in &plans {
        let started = if outcomes.is_empty() {
            started
        } else {
            Instant::now()
        };
        let mut run = HostRun {
            ctx: &ctx,
            plan,
            binary_changed_before: binary_changed,
            changed: Vec::new(),
            service: String::new(),
            generation: "-".into(),
        };
        let result = run_steps(&mut run, &remote).await;
        binary_changed |= run.changed.iter().any(|c| c == "binary");
        outcomes.push(outcome(
            plan,
            run.changed,
            run.service,
            run.generation,
            started,
            result.err(),
        ));
    }
    let _ = remote.session.close().await;
    outcomes
}

fn outcome(
    plan: &Plan,
    changed: Vec<String>,
    service: String,
    generation: String,
    started: Instant,
    error: Option<HostError>,
) -> Outcome {
    Outcome {
        label: plan.label.clone(),
        host: plan.host.clone(),
        repository: plan.repository.is_some(),
        changed,
        service,
        generation,
        seconds: started.elapsed().as_secs_f64(),
        error,
    }
}

/// The `connect` step of a host (its line names the host alone).
async fn connect(ctx: &Ctx, plan: &Plan) -> Result<Remote, String> {
    let st = ctx.ui.step(&plan.host, "connect");
    match ssh::connect(&ctx.ssh, &plan.dest).await {
        Ok((remote, msg)) => {
            st.done(msg);
            Ok(remote)
        }
        Err(msg) => {
            st.finish(false, msg.clone());
            Err(msg)
        }
    }
}

/// The steps of one agent after `connect`, in order.
async fn run_steps(run: &mut HostRun<'_>, remote: &Remote) -> StepResult<()> {
    let plan = run.plan;
    let (facts, bin, manager) = run.check(remote).await?;
    let bin_changed = run.binary(remote, &bin, &facts).await? || run.binary_changed_before;
    let cfg_changed = run
        .file(remote, "config", &plan.config_file, &plan.config_text, "")
        .await?;
    let unit_note = if manager == ManagerChoice::Systemd {
        ""
    } else {
        " (not used: the agent runs under start-stop-daemon)"
    };
    let unit_changed = run
        .file(remote, "unit", &plan.unit_file, &plan.unit_text, unit_note)
        .await?;
    let mut because = Vec::new();
    if bin_changed {
        because.push("binary");
    }
    if cfg_changed {
        because.push("config");
    }
    if unit_changed && manager == ManagerChoice::Systemd {
        because.push("unit");
    }
    run.service(remote, manager, &facts, because, unit_changed)
        .await?;
    if run.ctx.dry_run || run.ctx.no_wait {
        return Ok(());
    }
    run.sync(remote, manager).await
}

impl HostRun<'_> {
    /// Starts the progress line of step `name`.
    fn begin(&self, name: &'static str) -> Step {
        self.ctx.ui.step(&self.plan.label, name)
    }

    /// Ends a step: its `Ok` line finishes it, its error fails it (and
    /// becomes the host's error).
    fn end<T>(&self, st: Step, result: Result<(T, String), String>) -> StepResult<T> {
        match result {
            Ok((v, msg)) => {
                st.done(msg);
                Ok(v)
            }
            Err(msg) => {
                let step = st.name();
                st.finish(false, msg.clone());
                Err(HostError {
                    host: self.plan.label.clone(),
                    step,
                    message: msg,
                })
            }
        }
    }

    async fn check(&mut self, remote: &Remote) -> StepResult<(Facts, LocalBinary, ManagerChoice)> {
        let st = self.begin("check");
        let r = async {
            let facts = facts::gather(remote, self.plan).await?;
            let c = check_facts(&self.ctx.binaries, self.ctx.min_free, self.plan, &facts)?;
            check_user(remote, self.plan).await?;
            check_origin_key(remote, self.plan).await?;
            Ok(((facts, c.bin, c.manager), c.summary))
        }
        .await;
        self.end(st, r)
    }

    /// Compares and, unless dry, uploads the binary. True if it changed.
    async fn binary(
        &mut self,
        remote: &Remote,
        bin: &LocalBinary,
        facts: &Facts,
    ) -> StepResult<bool> {
        let st = self.begin("binary");
        let target = &self.plan.agent_bin;
        let r = upload::binary(remote, &st, bin, facts, target, self.ctx.dry_run).await;
        let changed = self.end(st, r)?;
        if changed {
            self.changed.push("binary".into());
        }
        Ok(changed)
    }

    /// Compares and, unless dry, writes a small file. True if it changed.
    async fn file(
        &mut self,
        remote: &Remote,
        step: &'static str,
        path: &std::path::Path,
        content: &str,
        note: &str,
    ) -> StepResult<bool> {
        let st = self.begin(step);
        let r = upload::file(remote, path, content, note, self.ctx.dry_run).await;
        let changed = self.end(st, r)?;
        if changed {
            self.changed.push(step.into());
        }
        Ok(changed)
    }

    async fn service(
        &mut self,
        remote: &Remote,
        manager: ManagerChoice,
        facts: &Facts,
        because: Vec<&'static str>,
        unit_changed: bool,
    ) -> StepResult<()> {
        let s = Service {
            plan: self.plan,
            manager,
            running: match manager {
                ManagerChoice::Systemd => facts.systemd_pid,
                _ => facts.daemon_pid,
            },
            because,
            unit_changed,
        };
        let st = self.begin("service");
        let r = service::service(remote, &st, &s, self.ctx.dry_run)
            .await
            .map(|(msg, changed)| ((msg.clone(), changed), msg));
        let (line, changed) = self.end(st, r)?;
        self.service = line;
        if changed {
            self.changed.push(if self.ctx.dry_run {
                "service (would)".into()
            } else {
                "service".into()
            });
        }
        Ok(())
    }

    async fn sync(&mut self, remote: &Remote, manager: ManagerChoice) -> StepResult<()> {
        let w = Wait {
            plan: self.plan,
            manager,
            http: &self.ctx.http,
            timeout: self.ctx.timeout,
        };
        let st = self.begin("sync");
        let r = sync::sync(remote, &st, &w).await;
        self.generation = self.end(st, r)?;
        Ok(())
    }
}
