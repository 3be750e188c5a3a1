//! docs/prometheus/alerts.yml passes `promtool check rules` and its unit
//! tests (`promtool test rules`); the alerts and docs/grafana/shoal.json
//! query only metrics the agent exports.

use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus; scripts/install-deps test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// Every metric the agent can export (an origin's and a mirror's status
/// with every optional value set, rendered by the agent's own code).
fn exported() -> Vec<String> {
    let mut v = Vec::new();
    for role in ["origin", "mirror"] {
        let st = shoal_status::Status {
            role: role.into(),
            version: "0".into(),
            last_sync_seconds: Some(1.0),
            last_success: Some(1),
            last_check_seconds: Some(1.0),
            ..Default::default()
        };
        v.extend(
            shoal_agent::http::metrics_text(&st)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(|l| l.split(['{', ' ']).next().unwrap().to_string()),
        );
    }
    // Each role's own metrics are among them.
    assert!(v.iter().any(|n| n == "shoal_feeder_handovers_total"));
    assert!(v.iter().any(|n| n == "shoal_pack_restarts_total"));
    v.sort();
    v.dedup();
    v
}

/// The `shoal_*` names in a text.
fn shoal_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("shoal_") {
        let s = i + p;
        let boundary = s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_');
        let mut e = s;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        if boundary {
            out.push(text[s..e].to_string());
        }
        i = e;
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    let dir = docs().join("prometheus");
    let check = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(check.contains("SUCCESS"), "{check}");
    let test = promtool(&["test", "rules", "alerts_test.yml"], &dir);
    assert!(test.contains("SUCCESS"), "{test}");
    let exported = exported();
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    for n in shoal_names(&rules) {
        assert!(exported.contains(&n), "alerts.yml uses {n}, not exported");
    }
}

#[test]
fn grafana_dashboard_parses_and_queries_exported_metrics() {
    let text = std::fs::read_to_string(docs().join("grafana/shoal.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = d["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let exported = exported();
    let mut used = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let names = shoal_names(expr);
            assert!(
                !names.is_empty(),
                "panel {} queries no shoal metric",
                p["title"]
            );
            used.extend(names);
        }
    }
    for n in &used {
        assert!(exported.contains(n), "dashboard queries {n}, not exported");
    }
    // Every exported metric has a panel.
    for n in &exported {
        assert!(used.contains(n), "no panel shows {n}");
    }
}
