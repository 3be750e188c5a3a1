//! The agent's JSON log (`--log-format json`): one JSON object per line,
//! with the event's message and fields under `fields`.

use serde_json::{Map, Value};

/// The fields of every event whose message is `message`, in log order.
pub fn events(log: &str, message: &str) -> Vec<Map<String, Value>> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter_map(|v| match v.get("fields") {
            Some(Value::Object(f)) if f.get("message").and_then(Value::as_str) == Some(message) => {
                Some(f.clone())
            }
            _ => None,
        })
        .collect()
}

/// A numeric field of an event.
pub fn num(fields: &Map<String, Value>, name: &str) -> Option<f64> {
    match fields.get(name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The last event with `message`'s numeric field `name`.
pub fn last_num(log: &str, message: &str, name: &str) -> Option<f64> {
    events(log, message).iter().rev().find_map(|f| num(f, name))
}

/// The last event with `message`'s text field `name`.
pub fn last_text(log: &str, message: &str, name: &str) -> Option<String> {
    events(log, message)
        .iter()
        .rev()
        .find_map(|f| f.get(name)?.as_str().map(str::to_string))
}

/// Lines of ERROR level, for reports of what went wrong.
pub fn errors(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("level").and_then(Value::as_str) == Some("ERROR"))
        .map(|v| {
            v.get("fields")
                .map(|f| f.to_string())
                .unwrap_or_else(|| v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"timestamp":"2026-11-25T01:04:05Z","level":"INFO","fields":{"message":"hashed changed files","files":30000,"bytes":13485000,"seconds":0.88,"mb_per_s":15.1},"target":"shoal_agent::origin"}
not json at all
{"timestamp":"2026-11-25T01:04:06Z","level":"INFO","fields":{"message":"published","generation":1,"seconds":1.8},"target":"shoal_agent::origin"}
{"timestamp":"2026-11-25T01:04:07Z","level":"ERROR","fields":{"message":"sync failed","error":"boom"},"target":"shoal_agent"}
{"timestamp":"2026-11-25T01:04:08Z","level":"INFO","fields":{"message":"hashed changed files","files":2,"mb_per_s":"99.5"},"target":"shoal_agent::origin"}
{"timestamp":"2026-11-25T01:04:09Z","level":"INFO","fields":{"message":"publish phases (seconds)","generation":2,"phases":"scan=0.010 hash=0.020"},"target":"shoal_agent::origin"}
"#;

    #[test]
    fn finds_events_and_fields() {
        let e = events(LOG, "hashed changed files");
        assert_eq!(e.len(), 2);
        assert_eq!(num(&e[0], "files"), Some(30000.0));
        assert_eq!(num(&e[0], "nope"), None);
        assert_eq!(
            last_num(LOG, "hashed changed files", "mb_per_s"),
            Some(99.5)
        );
        assert_eq!(last_num(LOG, "published", "seconds"), Some(1.8));
        assert_eq!(last_num(LOG, "applied", "seconds"), None);
        assert_eq!(
            last_text(LOG, "publish phases (seconds)", "phases").as_deref(),
            Some("scan=0.010 hash=0.020")
        );
        assert_eq!(last_text(LOG, "published", "seconds"), None);
    }

    #[test]
    fn collects_errors() {
        let e = errors(LOG);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("boom"));
    }
}
