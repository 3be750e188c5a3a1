//! How each agent ended, and the table `shoal bootstrap` prints at the end.

use super::steps::HostError;

/// How one agent (a host, or a repository on a host) ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The plan's label (`<host>` or `<host>/<repository>`).
    pub label: String,
    pub host: String,
    /// Whether the agent is one repository of a multi-repository site.
    pub repository: bool,
    pub changed: Vec<String>,
    pub service: String,
    pub generation: String,
    pub seconds: f64,
    pub error: Option<HostError>,
}

/// How many agents on how many hosts: `N host(s)` when each host has one
/// agent of a one-repository site, `N agent(s) on M host(s)` otherwise.
pub struct Counted {
    agents: usize,
    hosts: usize,
    repositories: bool,
}

impl Counted {
    /// Counts `(host, is a repository of a multi-repository site)` pairs.
    pub fn new<'a>(agents: impl Iterator<Item = (&'a str, bool)>) -> Counted {
        let mut hosts: Vec<&str> = Vec::new();
        let (mut n, mut repositories) = (0, false);
        for (h, r) in agents {
            n += 1;
            repositories |= r;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        Counted {
            agents: n,
            hosts: hosts.len(),
            repositories,
        }
    }
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.repositories {
            write!(f, "{} agent(s) on {} host(s)", self.agents, self.hosts)
        } else {
            write!(f, "{} host(s)", self.agents)
        }
    }
}

/// The table printed at the end.
pub fn summary(outcomes: &[Outcome], dry_run: bool) -> String {
    let header = ["HOST", "RESULT", "CHANGED", "GENERATION", "TIME", "AGENT"];
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let result = match (&o.error, o.changed.is_empty(), dry_run) {
                (Some(e), _, _) => format!("FAILED at {}", e.step),
                (None, true, _) => "unchanged".into(),
                (None, false, true) => "would change".into(),
                (None, false, false) => "changed".into(),
            };
            vec![
                o.label.clone(),
                result,
                if o.changed.is_empty() {
                    "-".into()
                } else {
                    o.changed.join(",")
                },
                o.generation.clone(),
                format!("{:.1}s", o.seconds),
                if o.service.is_empty() {
                    "-".into()
                } else {
                    o.service.clone()
                },
            ]
        })
        .collect();
    let mut out = String::from("\n");
    out.push_str(&crate::status::format_table(&header, &rows));
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let unchanged = outcomes
        .iter()
        .filter(|o| o.error.is_none() && o.changed.is_empty())
        .count();
    let changed = outcomes.len() - failed - unchanged;
    let verb = if dry_run { "would change" } else { "changed" };
    let counted = Counted::new(outcomes.iter().map(|o| (o.host.as_str(), o.repository)));
    out.push_str(&format!(
        "{counted}: {changed} {verb}, {unchanged} unchanged, {failed} failed."
    ));
    if failed == 0 && changed == 0 {
        out.push_str(" Nothing to do: every host is already as described.");
    } else if dry_run {
        out.push_str(" Dry run: nothing was changed.");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_when_nothing_changed() {
        let o = |label: &str, changed: Vec<String>| Outcome {
            label: label.into(),
            host: label.into(),
            repository: false,
            changed,
            service: "agent running (pid 1)".into(),
            generation: "3/3".into(),
            seconds: 1.0,
            error: None,
        };
        let s = summary(&[o("a", vec![]), o("b", vec![])], false);
        assert!(
            s.contains("2 host(s): 0 changed, 2 unchanged, 0 failed. Nothing to do"),
            "{s}"
        );
        let s = summary(&[o("a", vec!["config".into()])], false);
        assert!(s.contains("1 changed"), "{s}");
    }

    #[test]
    fn summary_counts_the_agents_of_each_host() {
        let o = |host: &str, repo: &str, changed: Vec<String>| Outcome {
            label: format!("{host}/{repo}"),
            host: host.into(),
            repository: true,
            changed,
            service: "agent running (pid 1)".into(),
            generation: "3/3".into(),
            seconds: 1.0,
            error: None,
        };
        let s = summary(
            &[
                o("m1", "debian", vec!["config".into()]),
                o("m1", "fedora", vec![]),
                o("m2", "debian", vec![]),
            ],
            false,
        );
        assert!(
            s.contains("3 agent(s) on 2 host(s): 1 changed, 2 unchanged, 0 failed."),
            "{s}"
        );
        assert!(s.contains("m1/fedora"), "{s}");
    }
}
