//! Progress output: a spinner (or a byte bar) per step on a terminal, plain
//! lines otherwise. Every finished step becomes one permanent line
//! `[host] step: message`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Progress output: a spinner (or a byte bar) per step on a terminal, plain
/// lines otherwise.
#[derive(Clone)]
pub struct Ui {
    mp: Option<MultiProgress>,
}

impl Ui {
    pub fn new() -> Ui {
        Ui {
            mp: std::io::stdout()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
        }
    }

    pub fn line(&self, s: &str) {
        match &self.mp {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => println!("{s}"),
        }
    }

    pub fn step(&self, host: &str, name: &'static str) -> Step {
        let pb = self.mp.as_ref().map(|mp| {
            let pb = mp.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg}")
                    .expect("template"),
            );
            pb.set_prefix(format!("[{host}] {name}"));
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Step {
            ui: self.clone(),
            pb,
            host: host.to_string(),
            name,
            done: false,
        }
    }
}

pub struct Step {
    ui: Ui,
    pb: Option<ProgressBar>,
    host: String,
    name: &'static str,
    done: bool,
}

impl Step {
    /// A note while the step runs (a printed line without a terminal).
    pub fn note(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.pb {
            Some(pb) => pb.set_message(msg),
            None => self
                .ui
                .line(&format!("[{}] {}: {msg}", self.host, self.name)),
        }
    }

    /// The step's name, as progress lines and errors show it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether progress goes to a terminal (plain lines otherwise).
    pub fn is_tty(&self) -> bool {
        self.pb.is_some()
    }

    /// Byte progress (a bar on a terminal; nothing otherwise).
    pub fn bytes(&self, done: u64, total: u64) {
        if let Some(pb) = &self.pb {
            if pb.length() != Some(total) {
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.cyan} {prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                pb.set_length(total);
            }
            pb.set_position(done);
        }
    }

    pub fn finish(mut self, ok: bool, msg: impl Into<String>) {
        self.done = true;
        let msg = msg.into();
        let line = if ok {
            format!("[{}] {}: {msg}", self.host, self.name)
        } else {
            format!("[{}] {}: FAILED: {msg}", self.host, self.name)
        };
        // A finished step becomes a permanent line (printed above the
        // spinners still running), whole however long it is.
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
        self.ui.line(&line);
    }

    pub fn done(self, msg: impl Into<String>) {
        self.finish(true, msg)
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.done {
            if let Some(pb) = &self.pb {
                pb.abandon();
            }
        }
    }
}
