//! The mutation engine: byte-level mutations every fuzzer has (bit flips,
//! interesting bytes, deletions, duplications, splices with other corpus
//! inputs, truncation, dictionary tokens, interesting numbers) plus
//! mutations that know the shape of each input format: JSON tokens,
//! bencode items (with their length prefixes kept or broken on purpose),
//! YAML lines, query-string pairs and percent escapes, and the signed
//! envelope (header fields, the zstd frame, and the body behind it,
//! recompressed and optionally re-signed with the test key so that the
//! code after the signature check is reached too).

use crate::rng::Rng;
use shoal_manifest::signed::PrivateKey;

/// The shape of a target's input, which decides the structure-aware
/// mutations used on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grammar {
    Json,
    Bencode,
    Yaml,
    Query,
    Envelope,
    Text,
}

/// Numbers at the edges of the types the parsers read.
pub const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "00",
    "01",
    "7",
    "255",
    "256",
    "4095",
    "4096",
    "4097",
    "16383",
    "16384",
    "16385",
    "32768",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1e308",
    "1e999",
    "-1e-999",
    "1.5",
    "0.0",
    "1E2",
    "0x10",
    "+1",
    "NaN",
];

/// Bytes that often sit on a parser's decision points.
const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b'\t', b' ', b'"', b'\'', b'\\', b'/', b'.', b':', b',',
    b'{', b'}', b'[', b']', b'%', b'&', b'=', b'+', b'-', b'0', b'9', b'e', b'i', b'l', b'd', b'#',
    b'*', b'!', b'|', b'>', b'?',
];

const JSON_TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "\"\"",
    "[]",
    "{}",
    "\"a\"",
    "\"..\"",
    "\"../../etc/passwd\"",
    "\"/etc/passwd\"",
    "\"a//b\"",
    "\"a/\"",
    "\"./a\"",
    "\"a\\u0000b\"",
    "\"\\ud800\"",
    "\"\\u00e9\"",
    "\"\\\"\"",
    "\"file\"",
    "\"symlink\"",
    "\"dir\"",
    "\"type\"",
    "\"path\"",
    "\"target\"",
    "\"pack\"",
    "\"size\"",
    "\"sha256\"",
    "\"mode\"",
    "\"mtime_ns\"",
    "\"format\"",
    "\"generation\"",
    "\"entries\"",
    "\"packs\"",
    "\"upserts\"",
    "\"removals\"",
    "\"header\"",
    "\"prev_sha256\"",
    "\"peer_addr\"",
    "\"127.0.0.1:1\"",
    "\"[::1]:6881\"",
    "\"0.0.0.0:0\"",
    "\"http://x\"",
    "\"0000000000000000000000000000000000000000000000000000000000000000\"",
    "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
    "\"0000000000000000000000000000000000000000\"",
    ",",
    ":",
    "{",
    "}",
    "[",
    "]",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}",
    "\"\\",
];

const BENCODE_TOKENS: &[&str] = &[
    "i0e",
    "i-1e",
    "i-0e",
    "i03e",
    "ie",
    "i16384e",
    "i16383e",
    "i9223372036854775807e",
    "i9223372036854775808e",
    "i-9223372036854775808e",
    "0:",
    "1:p",
    "2:..",
    "4:.pad",
    "4:attr",
    "6:length",
    "4:path",
    "4:name",
    "5:files",
    "6:pieces",
    "12:piece length",
    "4:info",
    "le",
    "de",
    "l",
    "d",
    "e",
    "llllllllllllllllllll",
    "dddddddddddddddddddd",
    "18446744073709551615:",
    "18446744073709551616:",
    "9223372036854775807:",
    "4294967296:",
    "99999999999999999999999:",
    "-1:",
    "1",
    ":",
];

const YAML_TOKENS: &[&str] = &[
    "~",
    "null",
    "true",
    "no",
    "\"\"",
    "''",
    "[]",
    "{}",
    "&a x",
    "*a",
    "&a [*a, *a, *a, *a]",
    "<<: *a",
    "!!binary aGk=",
    "!!int 3",
    "!!str",
    "!tag",
    "|",
    ">-",
    "? ",
    "- ",
    "---",
    "...",
    "%YAML 1.2",
    "\t",
    "#",
    "0s",
    "1ns",
    "30s",
    "1h 30m",
    "7d",
    "584942417355years",
    "18446744073709551615s",
    "99999999999999999999999d",
    "4GiB",
    "1.5GiB",
    "0.0000001KB",
    "1e400",
    "18446744073709551615TiB",
    "NaNB",
    "ed25519:0000000000000000000000000000000000000000000000000000000000000000",
    "127.0.0.1:0",
    "127.0.0.1:65535",
    "[::1]:8780",
    "0.0.0.0:8780",
    "http://127.0.0.1:8700",
    "/srv/repo",
    "/srv/repo/state",
    "/",
    "",
    "origin",
    "mirror",
    "debian",
    "rpm",
    "generic",
    "json",
    "text",
    "role:",
    "repo:",
    "state:",
    "listen:",
    "peer_listen:",
    "name:",
    "origin:",
    "mirror:",
    "network:",
    "log:",
    "hosts:",
    "defaults:",
    "mirrors:",
    "storage:",
    "upstreams:",
];

const QUERY_TOKENS: &[&str] = &[
    "info_hash=",
    "peer_id=",
    "port=",
    "uploaded=",
    "downloaded=",
    "left=",
    "compact=",
    "no_peer_id=",
    "event=",
    "numwant=",
    "ip=",
    "key=",
    "&",
    "=",
    "%",
    "%0",
    "%00",
    "%FF",
    "%ff",
    "%G0",
    "%%",
    "+",
    "#",
    "started",
    "stopped",
    "completed",
    "paused",
    "%3A%3A1",
    "::ffff:1.2.3.4",
    "127.0.0.1",
    "[::1]",
    "example.com",
];

const ENVELOPE_TOKENS: &[&str] = &[
    "SHOAL1 ",
    "SHOAL2 ",
    "head",
    "manifest",
    "delta",
    "checkpoint",
    " ",
    "\n",
    "=",
    "==",
    "AAAA",
    "\u{28}\u{b5}\u{2f}\u{fd}",
];

/// The built-in dictionary of a grammar.
pub fn grammar_tokens(g: Grammar) -> &'static [&'static str] {
    match g {
        Grammar::Json => JSON_TOKENS,
        Grammar::Bencode => BENCODE_TOKENS,
        Grammar::Yaml => YAML_TOKENS,
        Grammar::Query => QUERY_TOKENS,
        Grammar::Envelope => ENVELOPE_TOKENS,
        Grammar::Text => &[],
    }
}

/// Everything a mutation may draw on besides the input itself.
pub struct Mutator<'a> {
    pub grammar: Grammar,
    /// Target-specific tokens, on top of the grammar's own.
    pub extra_tokens: &'a [Vec<u8>],
    /// Inputs grow no longer than this.
    pub max_len: usize,
    /// For envelopes: the key that re-signs a mutated body, and the kinds.
    pub key: Option<&'a PrivateKey>,
}

impl Mutator<'_> {
    /// Applies a stack of 1 (half of the time), 2, 4 or 8 mutations to
    /// `data`; `corpus` gives material for splices.
    pub fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        let n = match rng.below(8) {
            0..=3 => 1,
            4 | 5 => 2,
            6 => 4,
            _ => 8,
        };
        for _ in 0..n {
            self.mutate_once(rng, data, corpus);
        }
        data.truncate(self.max_len);
    }

    fn token<'t>(&'t self, rng: &mut Rng) -> &'t [u8] {
        let g = grammar_tokens(self.grammar);
        let total = g.len() + self.extra_tokens.len() + NUMBERS.len();
        let i = rng.below(total.max(1));
        if i < g.len() {
            g[i].as_bytes()
        } else if i < g.len() + self.extra_tokens.len() {
            &self.extra_tokens[i - g.len()]
        } else if i < total {
            NUMBERS[i - g.len() - self.extra_tokens.len()].as_bytes()
        } else {
            b""
        }
    }

    /// One mutation: about half of the time one that knows the format.
    pub fn mutate_once(&self, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if rng.below(2) == 0 {
            let done = match self.grammar {
                Grammar::Json => json_mutation(self, rng, data, corpus),
                Grammar::Bencode => bencode_mutation(self, rng, data),
                Grammar::Yaml => yaml_mutation(self, rng, data, corpus),
                Grammar::Query => query_mutation(self, rng, data),
                Grammar::Envelope => envelope_mutation(self, rng, data, corpus),
                Grammar::Text => false,
            };
            if done {
                return;
            }
        }
        self.byte_mutation(rng, data, corpus);
    }

    fn byte_mutation(&self, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        let len = data.len();
        match rng.below(13) {
            // flip one bit
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            // an interesting or random byte
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = if rng.one_in(2) {
                    *rng.pick(INTERESTING_BYTES)
                } else {
                    rng.byte()
                };
            }
            // small arithmetic on a byte
            2 if len > 0 => {
                let i = rng.below(len);
                let d = 1 + rng.below(16) as u8;
                data[i] = if rng.one_in(2) {
                    data[i].wrapping_add(d)
                } else {
                    data[i].wrapping_sub(d)
                };
            }
            // delete a range
            3 if len > 0 => {
                let at = rng.below(len);
                let n = rng.small_len(len - at);
                data.drain(at..at + n);
            }
            // duplicate a range somewhere
            4 if len > 0 => {
                let at = rng.below(len);
                let n = rng.small_len(len - at);
                let chunk = data[at..at + n].to_vec();
                let to = rng.below(len + 1);
                splice_in(data, to, &chunk);
            }
            // insert random or repeated bytes
            5 => {
                let n = rng.small_len(64);
                let chunk: Vec<u8> = if rng.one_in(2) {
                    (0..n).map(|_| rng.byte()).collect()
                } else {
                    vec![*rng.pick(INTERESTING_BYTES); n]
                };
                let to = rng.below(len + 1);
                splice_in(data, to, &chunk);
            }
            // truncate
            6 if len > 0 => data.truncate(rng.below(len)),
            // crossover: our head, another input's tail
            7 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                let a = rng.below(len + 1);
                let b = rng.below(other.len() + 1);
                data.truncate(a);
                data.extend_from_slice(&other[b..]);
            }
            // insert a chunk of another input
            8 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let at = rng.below(other.len());
                    let n = rng.small_len(other.len() - at);
                    let to = rng.below(len + 1);
                    let chunk = other[at..at + n].to_vec();
                    splice_in(data, to, &chunk);
                }
            }
            // insert a dictionary token
            9 => {
                let t = self.token(rng).to_vec();
                let to = rng.below(len + 1);
                splice_in(data, to, &t);
            }
            // overwrite a range with a dictionary token
            10 if len > 0 => {
                let t = self.token(rng).to_vec();
                let at = rng.below(len);
                let n = rng.small_len(len - at).min(t.len().max(1));
                data.splice(at..at + n, t);
            }
            // replace a run of digits with an interesting number
            11 => {
                replace_number(rng, data);
            }
            // repeat a token many times (nesting, long runs)
            _ => {
                let t = self.token(rng).to_vec();
                let times = 1 + rng.below(256);
                let mut chunk = Vec::with_capacity(t.len() * times);
                for _ in 0..times {
                    chunk.extend_from_slice(&t);
                }
                let to = rng.below(len + 1);
                splice_in(data, to, &chunk);
            }
        }
    }
}

fn splice_in(data: &mut Vec<u8>, at: usize, chunk: &[u8]) {
    data.splice(at..at, chunk.iter().copied());
}

/// Replaces the digit run at or after a random position with one of
/// [`NUMBERS`]; false if there is none.
fn replace_number(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    if data.is_empty() {
        return false;
    }
    let from = rng.below(data.len());
    let Some(start) = (from..data.len())
        .chain(0..from)
        .find(|&i| data[i].is_ascii_digit())
    else {
        return false;
    };
    let mut start = start;
    if start > 0 && data[start - 1] == b'-' {
        start -= 1;
    }
    let mut end = start + 1;
    while end < data.len() && (data[end].is_ascii_digit() || data[end] == b'.') {
        end += 1;
    }
    let n = rng.pick(NUMBERS).as_bytes().to_vec();
    data.splice(start..end, n);
    true
}

// --------------------------------------------------------------------------
// JSON
// --------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum JTok {
    Str,
    Num,
    Word,
    Punct,
}

/// Splits JSON-ish bytes into token spans (whitespace dropped). Garbage
/// becomes single-byte punctuation tokens, so this never fails.
fn json_tokens(d: &[u8]) -> Vec<(usize, usize, JTok)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        let c = d[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' {
            let s = i;
            i += 1;
            while i < d.len() && d[i] != b'"' {
                i += if d[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(d.len());
            out.push((s, i, JTok::Str));
        } else if c == b'-' || c.is_ascii_digit() {
            let s = i;
            i += 1;
            while i < d.len() && (d[i].is_ascii_digit() || b".eE+-".contains(&d[i])) {
                i += 1;
            }
            out.push((s, i, JTok::Num));
        } else if c.is_ascii_alphabetic() {
            let s = i;
            while i < d.len() && d[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push((s, i, JTok::Word));
        } else {
            out.push((i, i + 1, JTok::Punct));
            i += 1;
        }
    }
    out
}

fn json_mutation(m: &Mutator, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) -> bool {
    let toks = json_tokens(data);
    if toks.is_empty() {
        return false;
    }
    let values: Vec<&(usize, usize, JTok)> = toks.iter().filter(|t| t.2 != JTok::Punct).collect();
    match rng.below(8) {
        // a value token becomes another value or a dictionary token
        0 if !values.is_empty() => {
            let &(s, e, _) = *rng.pick(&values);
            let t = if rng.one_in(3) {
                rng.pick(NUMBERS).as_bytes().to_vec()
            } else {
                m.token(rng).to_vec()
            };
            data.splice(s..e, t);
        }
        // a string token is edited inside its quotes
        1 => {
            let strs: Vec<_> = toks.iter().filter(|t| t.2 == JTok::Str).collect();
            if strs.is_empty() {
                return false;
            }
            let &(s, e, _) = *rng.pick(&strs);
            if e - s < 2 {
                return false;
            }
            let inner = (s + 1)..(e - 1);
            let edit: Vec<u8> = match rng.below(5) {
                0 => Vec::new(),
                1 => b"../".repeat(1 + rng.below(4)),
                2 => vec![b'a'; 1 + rng.below(5000)],
                3 => {
                    let mut v = data[inner.clone()].to_vec();
                    let at = rng.below(v.len() + 1);
                    let piece: &[u8] = rng.pick::<&[u8]>(&[
                        b"/",
                        b"//",
                        b"/..",
                        b"/.",
                        b"\\u0000",
                        b"\\n",
                        b"\\ud83d\\ude00",
                        b"\xc3\xa9",
                        b"\xff",
                        b" ",
                    ]);
                    v.splice(at..at, piece.iter().copied());
                    v
                }
                _ => {
                    // another input's string
                    let other = if corpus.is_empty() {
                        &*data
                    } else {
                        rng.pick(corpus)
                    };
                    let ot: Vec<_> = json_tokens(other)
                        .into_iter()
                        .filter(|t| t.2 == JTok::Str && t.1 - t.0 >= 2)
                        .collect();
                    if ot.is_empty() {
                        return false;
                    }
                    let (a, b, _) = *rng.pick(&ot);
                    other[a + 1..b - 1].to_vec()
                }
            };
            data.splice(inner, edit);
        }
        // delete a token
        2 => {
            let &(s, e, _) = rng.pick(&toks);
            data.drain(s..e);
        }
        // duplicate a member or element: the span between two separators
        3 => {
            let seps: Vec<usize> = toks
                .iter()
                .filter(|t| t.2 == JTok::Punct && b",[{".contains(&data[t.0]))
                .map(|t| t.0)
                .collect();
            if seps.len() < 2 {
                return false;
            }
            let i = rng.below(seps.len() - 1);
            let (a, b) = (seps[i] + 1, seps[i + 1] + 1);
            let chunk = data[a..b].to_vec();
            splice_in(data, b, &chunk);
        }
        // swap two tokens
        4 if toks.len() >= 2 => {
            let mut i = rng.below(toks.len());
            let mut j = rng.below(toks.len());
            if i == j {
                return false;
            }
            if i > j {
                std::mem::swap(&mut i, &mut j);
            }
            let (a, b) = (toks[i], toks[j]);
            let ta = data[a.0..a.1].to_vec();
            let tb = data[b.0..b.1].to_vec();
            data.splice(b.0..b.1, ta);
            data.splice(a.0..a.1, tb);
        }
        // wrap a value in an array or object
        5 if !values.is_empty() => {
            let &(s, e, _) = *rng.pick(&values);
            let (open, close): (&[u8], &[u8]) = if rng.one_in(2) {
                (b"[", b"]")
            } else {
                (b"{\"k\":", b"}")
            };
            splice_in(data, e, close);
            splice_in(data, s, open);
        }
        // a number becomes an edge value
        6 => {
            let nums: Vec<_> = toks.iter().filter(|t| t.2 == JTok::Num).collect();
            if nums.is_empty() {
                return false;
            }
            let &(s, e, _) = *rng.pick(&nums);
            data.splice(s..e, rng.pick(NUMBERS).bytes());
        }
        // a token from another input
        _ => {
            if corpus.is_empty() {
                return false;
            }
            let other = rng.pick(corpus);
            let ot = json_tokens(other);
            if ot.is_empty() {
                return false;
            }
            let (a, b, _) = *rng.pick(&ot);
            let &(s, e, _) = rng.pick(&toks);
            data.splice(s..e, other[a..b].iter().copied());
        }
    }
    true
}

// --------------------------------------------------------------------------
// Bencode
// --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum BTok {
    /// A string: the span of its length prefix and of its bytes.
    Str {
        prefix: (usize, usize),
        body: (usize, usize),
    },
    Int(usize, usize),
    /// `l`, `d` or `e`.
    Mark(usize),
}

/// Scans bencode leniently: stops at the first byte it cannot read.
fn bencode_tokens(d: &[u8]) -> Vec<BTok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        match d[i] {
            b'l' | b'd' | b'e' => {
                out.push(BTok::Mark(i));
                i += 1;
            }
            b'i' => {
                let Some(e) = d[i..].iter().position(|&b| b == b'e') else {
                    break;
                };
                out.push(BTok::Int(i, i + e + 1));
                i += e + 1;
            }
            b'0'..=b'9' => {
                let Some(c) = d[i..].iter().position(|&b| b == b':') else {
                    break;
                };
                let Some(n) = std::str::from_utf8(&d[i..i + c])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    break;
                };
                let start = i + c + 1;
                let end = start.saturating_add(n).min(d.len());
                out.push(BTok::Str {
                    prefix: (i, i + c),
                    body: (start, end),
                });
                i = end;
            }
            _ => break,
        }
    }
    out
}

fn tok_span(t: BTok) -> (usize, usize) {
    match t {
        BTok::Str { prefix, body } => (prefix.0, body.1),
        BTok::Int(a, b) => (a, b),
        BTok::Mark(a) => (a, a + 1),
    }
}

fn bencode_string(b: &[u8]) -> Vec<u8> {
    let mut v = b.len().to_string().into_bytes();
    v.push(b':');
    v.extend_from_slice(b);
    v
}

fn bencode_mutation(m: &Mutator, rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    let toks = bencode_tokens(data);
    if toks.is_empty() {
        return false;
    }
    let strs: Vec<_> = toks
        .iter()
        .filter_map(|t| match t {
            BTok::Str { prefix, body } => Some((*prefix, *body)),
            _ => None,
        })
        .collect();
    match rng.below(7) {
        // break a length prefix (content unchanged)
        0 if !strs.is_empty() => {
            let (p, _) = *rng.pick(&strs);
            let old: usize = std::str::from_utf8(&data[p.0..p.1])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let new = match rng.below(4) {
                0 => old.wrapping_add(1).to_string(),
                1 => old.saturating_sub(1).to_string(),
                2 => "0".to_string(),
                _ => rng.pick(NUMBERS).to_string(),
            };
            data.splice(p.0..p.1, new.into_bytes());
        }
        // replace a string's content, keeping the prefix consistent
        1 if !strs.is_empty() => {
            let (p, b) = *rng.pick(&strs);
            let body = data[b.0..b.1].to_vec();
            let new: Vec<u8> = match rng.below(6) {
                0 => Vec::new(),
                1 => b"..".to_vec(),
                2 => {
                    let mut v = body.clone();
                    if !v.is_empty() {
                        let i = rng.below(v.len());
                        v[i] = *rng.pick(b"0af/.\0gG");
                    }
                    v
                }
                3 => body[..body.len() / 2].to_vec(),
                4 => {
                    let mut v = body.clone();
                    v.extend_from_slice(&body);
                    v
                }
                _ => m.token(rng).to_vec(),
            };
            data.splice(p.0..b.1, bencode_string(&new));
        }
        // an integer becomes an edge value
        2 => {
            let ints: Vec<_> = toks
                .iter()
                .filter_map(|t| match t {
                    BTok::Int(a, b) => Some((*a, *b)),
                    _ => None,
                })
                .collect();
            if ints.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ints);
            let mut v = b"i".to_vec();
            v.extend_from_slice(rng.pick(NUMBERS).as_bytes());
            v.push(b'e');
            data.splice(a..b, v);
        }
        // delete one item
        3 => {
            let (a, b) = tok_span(*rng.pick(&toks));
            data.drain(a..b);
        }
        // duplicate one item
        4 => {
            let (a, b) = tok_span(*rng.pick(&toks));
            let chunk = data[a..b].to_vec();
            splice_in(data, b, &chunk);
        }
        // insert a structure mark before an item
        5 => {
            let (a, _) = tok_span(*rng.pick(&toks));
            let mark: &[u8] =
                rng.pick::<&[u8]>(&[b"l", b"d", b"e", b"le", b"de", b"lllllllllllllllllll"]);
            splice_in(data, a, mark);
        }
        // swap two items
        _ => {
            if toks.len() < 2 {
                return false;
            }
            let mut i = rng.below(toks.len());
            let mut j = rng.below(toks.len());
            if i == j {
                return false;
            }
            if i > j {
                std::mem::swap(&mut i, &mut j);
            }
            let (a, b) = (tok_span(toks[i]), tok_span(toks[j]));
            if a.1 > b.0 {
                return false;
            }
            let ta = data[a.0..a.1].to_vec();
            let tb = data[b.0..b.1].to_vec();
            data.splice(b.0..b.1, ta);
            data.splice(a.0..a.1, tb);
        }
    }
    true
}

// --------------------------------------------------------------------------
// YAML (line based)
// --------------------------------------------------------------------------

fn lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == b'\n').map(|l| l.to_vec()).collect()
}

fn join(ls: &[Vec<u8>]) -> Vec<u8> {
    ls.join(&b'\n')
}

fn yaml_mutation(m: &Mutator, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) -> bool {
    let mut ls = lines(data);
    let n = ls.len();
    match rng.below(7) {
        0 => {
            ls.remove(rng.below(n));
        }
        1 => {
            let i = rng.below(n);
            let l = ls[i].clone();
            ls.insert(rng.below(n + 1), l);
        }
        2 => {
            let (i, j) = (rng.below(n), rng.below(n));
            ls.swap(i, j);
        }
        // indent or dedent a line
        3 => {
            let i = rng.below(n);
            if rng.one_in(2) {
                let pad: &[u8] = rng.pick::<&[u8]>(&[b"  ", b" ", b"\t", b"- "]);
                ls[i].splice(0..0, pad.iter().copied());
            } else {
                let k = ls[i].iter().take_while(|&&b| b == b' ').count().min(2);
                ls[i].drain(..k);
            }
        }
        // replace the value after `key:` (or the whole line)
        4 => {
            let i = rng.below(n);
            let t = m.token(rng).to_vec();
            match ls[i].windows(2).position(|w| w == b": ") {
                Some(p) => {
                    ls[i].truncate(p + 2);
                    ls[i].extend_from_slice(&t);
                }
                None => ls[i] = t,
            }
        }
        // a line from another input
        5 if !corpus.is_empty() => {
            let other = lines(rng.pick(corpus).as_slice());
            let l = rng.pick(&other).clone();
            ls.insert(rng.below(n + 1), l);
        }
        // insert a line made of a key and a dictionary value
        _ => {
            let i = rng.below(n);
            let indent = ls[i].iter().take_while(|&&b| b == b' ').count();
            let mut l = vec![b' '; indent];
            l.extend_from_slice(m.token(rng));
            if rng.one_in(2) {
                l.push(b' ');
                l.extend_from_slice(m.token(rng));
            }
            ls.insert(rng.below(n + 1), l);
        }
    }
    *data = join(&ls);
    true
}

// --------------------------------------------------------------------------
// Query strings
// --------------------------------------------------------------------------

fn query_mutation(m: &Mutator, rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    let mut pairs: Vec<Vec<u8>> = data.split(|&b| b == b'&').map(|p| p.to_vec()).collect();
    let n = pairs.len();
    match rng.below(6) {
        0 => {
            pairs.remove(rng.below(n));
        }
        1 => {
            let p = pairs[rng.below(n)].clone();
            pairs.insert(rng.below(n + 1), p);
        }
        2 => {
            let (i, j) = (rng.below(n), rng.below(n));
            pairs.swap(i, j);
        }
        // new value for a pair
        3 => {
            let i = rng.below(n);
            let t = m.token(rng).to_vec();
            match pairs[i].iter().position(|&b| b == b'=') {
                Some(e) => {
                    pairs[i].truncate(e + 1);
                    pairs[i].extend_from_slice(&t);
                }
                None => pairs[i] = t,
            }
        }
        // damage or add a percent escape
        4 => {
            let i = rng.below(n);
            let p = &mut pairs[i];
            let escapes: Vec<usize> = (0..p.len()).filter(|&k| p[k] == b'%').collect();
            if !escapes.is_empty() && rng.one_in(2) {
                let k = *rng.pick(&escapes);
                match rng.below(3) {
                    0 => {
                        p.truncate(k + 1 + rng.below(2));
                    }
                    1 => {
                        if k + 1 < p.len() {
                            p[k + 1] = *rng.pick(b"gGz%&0F ");
                        }
                    }
                    _ => {
                        p.drain(k..(k + 3).min(p.len()));
                    }
                }
            } else {
                let b = rng.byte();
                let esc = format!("%{b:02X}");
                let at = rng.below(p.len() + 1);
                p.splice(at..at, esc.bytes());
            }
        }
        // a whole new pair
        _ => {
            let mut p = m.token(rng).to_vec();
            if rng.one_in(2) {
                p.extend_from_slice(m.token(rng));
            }
            pairs.insert(rng.below(n + 1), p);
        }
    }
    *data = pairs.join(&b'&');
    true
}

// --------------------------------------------------------------------------
// Signed envelopes
// --------------------------------------------------------------------------

/// Largest body decompressed for a body-level mutation.
const MAX_MUTATED_BODY: usize = 1 << 20;

fn envelope_mutation(m: &Mutator, rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) -> bool {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let header = data[..nl].to_vec();
    let payload = data[nl + 1..].to_vec();
    let fields: Vec<Vec<u8>> = header.split(|&b| b == b' ').map(|f| f.to_vec()).collect();
    match rng.below(6) {
        // body-level: decompress, mutate the JSON, recompress, and either
        // keep the old signature or re-sign with the test key
        0..=2 => {
            let Ok(mut body) = zstd::bulk::decompress(&payload, MAX_MUTATED_BODY) else {
                return false;
            };
            let json = Mutator {
                grammar: Grammar::Json,
                extra_tokens: m.extra_tokens,
                max_len: m.max_len,
                key: None,
            };
            let bodies: Vec<Vec<u8>> = corpus
                .iter()
                .take(16)
                .filter_map(|c| {
                    let nl = c.iter().position(|&b| b == b'\n')?;
                    zstd::bulk::decompress(&c[nl + 1..], MAX_MUTATED_BODY).ok()
                })
                .collect();
            json.mutate_once(rng, &mut body, &bodies);
            let kind = fields
                .get(1)
                .map(|k| String::from_utf8_lossy(k).into_owned());
            match (m.key, kind) {
                (Some(key), Some(kind)) if rng.below(3) != 0 => {
                    *data = key.seal(&kind, &body);
                }
                _ => {
                    let Ok(z) = zstd::bulk::compress(&body, 1) else {
                        return false;
                    };
                    data.truncate(nl + 1);
                    data.extend_from_slice(&z);
                }
            }
        }
        // a header field changes
        3 => {
            let mut fields = fields;
            let i = rng.below(fields.len());
            let f = &mut fields[i];
            match rng.below(5) {
                0 => *f = m.token(rng).to_vec(),
                1 => f.clear(),
                2 if !f.is_empty() => {
                    let k = rng.below(f.len());
                    f[k] = *rng.pick(b"A/+=-_ \0");
                }
                3 => f.truncate(f.len().saturating_sub(1 + rng.below(3))),
                _ => f.extend_from_slice(rng.pick::<&[u8]>(&[b"=", b"==", b"AAAA", b" x"])),
            }
            let mut out = fields.join(&b' ');
            out.push(b'\n');
            out.extend_from_slice(&payload);
            *data = out;
        }
        // the zstd frame header (magic, descriptor, window, sizes) changes
        4 if payload.len() > 4 => {
            let i = nl + 1 + rng.below(payload.len().min(18));
            data[i] = if rng.one_in(2) {
                rng.byte()
            } else {
                data[i] ^ (1 << rng.below(8))
            };
        }
        // bytes inside the compressed stream
        _ => {
            if payload.is_empty() {
                return false;
            }
            let i = nl + 1 + rng.below(payload.len());
            data[i] ^= 1 << rng.below(8);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(g: Grammar, seed: &[u8], rounds: usize) -> Vec<Vec<u8>> {
        let m = Mutator {
            grammar: g,
            extra_tokens: &[],
            max_len: 4096,
            key: None,
        };
        let mut rng = Rng::new(7);
        let corpus = vec![seed.to_vec()];
        (0..rounds)
            .map(|_| {
                let mut d = seed.to_vec();
                m.mutate(&mut rng, &mut d, &corpus);
                assert!(d.len() <= 4096);
                d
            })
            .collect()
    }

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        for (g, seed) in [
            (Grammar::Json, &br#"{"a":[1,2,{"b":"c"}],"d":null}"#[..]),
            (Grammar::Bencode, b"d4:infod4:name1:x6:lengthi5eee"),
            (
                Grammar::Yaml,
                b"role: mirror\nrepo: /r\nmirror:\n  trace: true\n",
            ),
            (Grammar::Query, b"info_hash=%00%01&port=1&left=0"),
            (Grammar::Text, b"hello"),
        ] {
            let out = run(g, seed, 300);
            let changed = out.iter().filter(|d| d.as_slice() != seed).count();
            assert!(changed > 250, "{g:?}: only {changed} of 300 changed");
            let distinct: std::collections::HashSet<_> = out.iter().collect();
            assert!(
                distinct.len() > 150,
                "{g:?}: only {} distinct",
                distinct.len()
            );
        }
    }

    #[test]
    fn tokenizers_find_the_structure() {
        let t = json_tokens(br#"{"a\"b": -1.5e3, "c": [true]}"#);
        let kinds: Vec<JTok> = t.iter().map(|t| t.2).collect();
        use JTok::*;
        assert_eq!(
            kinds,
            vec![Punct, Str, Punct, Num, Punct, Str, Punct, Punct, Word, Punct, Punct]
        );
        let b = bencode_tokens(b"d4:infoi-3ee");
        assert_eq!(b.len(), 4);
        assert!(matches!(b[1], BTok::Str { body: (3, 7), .. }));
        assert!(matches!(b[2], BTok::Int(7, 11)));
    }

    #[test]
    fn envelope_body_mutation_can_reseal() {
        let key =
            PrivateKey::from_file_text(&format!("shoal-ed25519-private-key {}", "11".repeat(32)))
                .unwrap();
        let env = key.seal("head", br#"{"format":1,"generation":1}"#);
        let m = Mutator {
            grammar: Grammar::Envelope,
            extra_tokens: &[],
            max_len: 1 << 16,
            key: Some(&key),
        };
        let mut rng = Rng::new(1);
        let pk = key.public();
        let mut opened_changed = 0;
        for _ in 0..200 {
            let mut d = env.clone();
            m.mutate_once(&mut rng, &mut d, std::slice::from_ref(&env));
            if let Ok(body) = pk.open("head", &d) {
                if body != br#"{"format":1,"generation":1}"# {
                    opened_changed += 1;
                }
            }
        }
        assert!(opened_changed > 10, "re-signed bodies: {opened_changed}");
    }
}
