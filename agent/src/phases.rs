//! Seconds per named phase of a pipeline run (the origin's scan → hash →
//! pack → manifest → sign → serve, the mirror's fetch → verify → plan →
//! download → apply), logged when the run is done so an operator, and the
//! benchmark, see where the time goes.

use std::time::Instant;

/// Seconds per named phase of a pipeline run.
#[derive(Default)]
pub struct Phases {
    done: Vec<(&'static str, f64)>,
    at: Option<Instant>,
}

impl Phases {
    pub fn start() -> Phases {
        Phases {
            done: Vec::new(),
            at: Some(Instant::now()),
        }
    }

    /// Ends phase `name` (begun at the end of the previous one).
    pub fn end(&mut self, name: &'static str) {
        let now = Instant::now();
        let since = self.at.replace(now).unwrap_or(now);
        self.done.push((name, (now - since).as_secs_f64()));
    }

    /// `scan=0.012 hash=0.300 …` in seconds.
    pub fn summary(&self) -> String {
        self.done
            .iter()
            .map(|(n, s)| format!("{n}={s:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_listed_in_order_with_their_seconds() {
        let mut p = Phases::start();
        p.end("scan");
        p.end("hash");
        let s = p.summary();
        let parts: Vec<(&str, f64)> = s
            .split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k, v.parse().unwrap())
            })
            .collect();
        assert_eq!(
            parts.iter().map(|p| p.0).collect::<Vec<_>>(),
            ["scan", "hash"]
        );
        assert!(parts.iter().all(|p| p.1 >= 0.0), "{s}");
    }
}
