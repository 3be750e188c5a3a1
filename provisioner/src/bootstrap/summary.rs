//! How each host ended, and the table `shoal bootstrap` prints at the end.

use super::steps::HostError;

/// How a host ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub label: String,
    pub changed: Vec<String>,
    pub service: String,
    pub generation: String,
    pub seconds: f64,
    pub error: Option<HostError>,
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
    out.push_str(&format!(
        "{} host(s): {changed} {verb}, {unchanged} unchanged, {failed} failed.",
        outcomes.len()
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
}
