//! Helpers shared by the site-file error tests: expected lines are found
//! in the test text itself (the line holding a marker).

use shoal_provisioner::site::Site;

/// The 1-based line of the first line of `text` containing `marker`.
pub fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("marker {marker:?} not in test text:\n{text}"))
        + 1
}

/// The errors of `text`, as printed.
pub fn errors(text: &str) -> Vec<String> {
    match Site::from_yaml(text, "sites/site.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts one error sits on the marker's line, names `key` and contains
/// every piece of advice.
pub fn expect(text: &str, marker: &str, key: &str, advice: &[&str]) -> String {
    let line = line_of(text, marker);
    let errs = errors(text);
    let prefix = format!("sites/site.yaml:{line}:");
    let hit = errs
        .iter()
        .find(|e| e.starts_with(&prefix) && e.contains(&format!(" {key}: ")))
        .unwrap_or_else(|| {
            panic!(
                "no error at {prefix} for key {key}; got:\n{}",
                errs.join("\n")
            )
        });
    for a in advice {
        assert!(hit.contains(a), "error lacks {a:?}: {hit}");
    }
    hit.clone()
}
