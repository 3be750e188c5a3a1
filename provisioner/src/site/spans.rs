//! The line and column of every key path in a site file, so that an error
//! found after parsing (a port clash, a missing key) points at the line of
//! the offending key.

use std::collections::HashMap;

/// The position of every key and sequence item in a YAML text, by key path
/// (`origin.listen`, `mirrors[2]`, `mirrors[2].upstreams[0]`).
///
/// Built from yaml-rust2's marked event stream, which follows the YAML
/// grammar (block and flow style, quoting, comments), so positions are right
/// however the file is laid out.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    map: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct SpanBuilder {
    stack: Vec<Frame>,
    map: HashMap<String, (usize, usize)>,
    /// Block mappings are reported where the parser knows they started,
    /// which can be past their first key; such a position is replaced by
    /// the first key's.
    tentative: std::collections::HashSet<String>,
}

pub(super) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl SpanBuilder {
    /// Called for each node; returns the node's path, or `None` if the node
    /// is a mapping key (recorded as the position of `parent.key`).
    fn node(&mut self, scalar: Option<&str>, line: usize, col: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    if self.tentative.remove(path.as_str()) {
                        self.map.insert(path.clone(), (line, col));
                    }
                    let k = scalar.unwrap_or("?").to_string();
                    let p = join_key(path, &k);
                    self.map.entry(p).or_insert((line, col));
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join_key(path, &k)),
            },
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.map.entry(p.clone()).or_insert((line, col));
                Some(p)
            }
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for SpanBuilder {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        let (line, col) = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(s, ..) => {
                self.node(Some(&s), line, col);
            }
            Event::Alias(_) => {
                self.node(None, line, col);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key gets a path nobody asks for.
                let path = self.node(None, line, col).unwrap_or_else(|| "?".into());
                if let std::collections::hash_map::Entry::Vacant(e) = self.map.entry(path.clone()) {
                    e.insert((line, col));
                }
                if path.ends_with(']') {
                    self.tentative.insert(path.clone());
                }
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node(None, line, col).unwrap_or_else(|| "?".into());
                self.map.entry(path.clone()).or_insert((line, col));
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Spans {
    /// Indexes `text`. A text the event parser cannot read yields an empty
    /// index (errors then carry line 1 rather than none).
    pub fn parse(text: &str) -> Spans {
        let mut b = SpanBuilder {
            stack: Vec::new(),
            map: HashMap::new(),
            tentative: Default::default(),
        };
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return Spans::default();
        }
        Spans { map: b.map }
    }

    /// The positions of the keys under `prefix` (such as
    /// `repositories[1].`), with the prefix taken off, over the top-level
    /// `name` and `defaults`: what the rules of one repository of a
    /// multi-repository site see.
    pub fn sub(&self, prefix: &str) -> Spans {
        let mut map: HashMap<String, (usize, usize)> = self
            .map
            .iter()
            .filter(|(k, _)| *k == "name" || *k == "defaults" || k.starts_with("defaults."))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, v) in &self.map {
            if let Some(rest) = k.strip_prefix(prefix) {
                map.insert(rest.to_string(), *v);
            }
        }
        Spans { map }
    }

    /// The position of exactly this path.
    pub fn get(&self, path: &str) -> Option<(usize, usize)> {
        self.map.get(path).copied()
    }

    /// The position of this path or of its nearest parent that is in the
    /// file; `(1, 1)` if none is.
    pub fn nearest(&self, path: &str) -> (usize, usize) {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.get(&p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return (1, 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_find_keys_in_block_and_flow_style() {
        let text = "name: x\norigin:\n  host: a\n  listen: 1.2.3.4:5\nmirrors:\n  - host: b\n  - {host: c, listen: \"0.0.0.0:1\"}\n";
        let s = Spans::parse(text);
        assert_eq!(s.get("name"), Some((1, 1)));
        assert_eq!(s.get("origin.listen"), Some((4, 3)));
        assert_eq!(s.get("mirrors[0].host"), Some((6, 5)));
        assert_eq!(s.get("mirrors[0]"), Some((6, 5)));
        assert_eq!(s.get("mirrors[1].listen").map(|p| p.0), Some(7));
        assert_eq!(s.nearest("mirrors[1].nothing").0, 7);
        assert_eq!(s.nearest("absent.key"), (1, 1));
    }
}
