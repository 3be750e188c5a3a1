//! Just enough bencode for Shoal packs: writing the exact info dictionary
//! shape [`crate::build`] needs, and a strict parser that keeps the raw
//! bytes of each value (the info hash is SHA-1 of the raw `info` value).

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

fn int(out: &mut Vec<u8>, i: u64) {
    out.push(b'i');
    out.extend_from_slice(i.to_string().as_bytes());
    out.push(b'e');
}

/// A bencoded list built from already-encoded items.
pub struct List(Vec<u8>);

impl List {
    pub fn new() -> Self {
        List(vec![b'l'])
    }
    pub fn push_raw(&mut self, item: &[u8]) {
        self.0.extend_from_slice(item);
    }
    fn finish(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.push(b'e');
        v
    }
}

/// `{attr?, length, path}` with keys in sorted order.
pub fn file_entry(attr: Option<&str>, length: u64, path: &[&str]) -> Vec<u8> {
    let mut out = vec![b'd'];
    if let Some(a) = attr {
        bytes(&mut out, b"attr");
        bytes(&mut out, a.as_bytes());
    }
    bytes(&mut out, b"length");
    int(&mut out, length);
    bytes(&mut out, b"path");
    out.push(b'l');
    for p in path {
        bytes(&mut out, p.as_bytes());
    }
    out.push(b'e');
    out.push(b'e');
    out
}

/// `{files, name, piece length, pieces}` with keys in sorted order.
pub fn info_dict(files: &List, name: &str, piece_len: u64, pieces: &[u8]) -> Vec<u8> {
    let mut out = vec![b'd'];
    bytes(&mut out, b"files");
    out.extend_from_slice(&files.finish());
    pieces_and_privacy(&mut out, name, piece_len, pieces);
    out.push(b'e');
    out
}

/// The keys every pack's info dictionary has, from `name` to `private`
/// (sorted: they follow `files` or `length`).
fn pieces_and_privacy(out: &mut Vec<u8>, name: &str, piece_len: u64, pieces: &[u8]) {
    bytes(out, b"name");
    bytes(out, name.as_bytes());
    bytes(out, b"piece length");
    int(out, piece_len);
    bytes(out, b"pieces");
    bytes(out, pieces);
    // BEP 27: peers come only from the trackers and peers Shoal gives
    // (librqbit then sends no PEX, which would hand every mirror the
    // origin's address; see shoal-swarm).
    bytes(out, b"private");
    int(out, 1);
}

/// The info dictionary of a format 4 pack (`Shape::Stream`): one file,
/// the pack's stream of `length` bytes, named `name`; `contents` lists
/// each content's SHA-256 and size (40 bytes each, the size big-endian)
/// in stream order, and the first `packed_from` of them are aligned. Keys
/// in sorted order.
pub fn stream_info_dict(
    length: u64,
    name: &str,
    piece_len: u64,
    pieces: &[u8],
    contents: &[u8],
    packed_from: u64,
) -> Vec<u8> {
    let mut out = vec![b'd'];
    bytes(&mut out, b"length");
    int(&mut out, length);
    pieces_and_privacy(&mut out, name, piece_len, pieces);
    bytes(&mut out, crate::CONTENTS_KEY);
    bytes(&mut out, contents);
    bytes(&mut out, crate::PACKED_FROM_KEY);
    int(&mut out, packed_from);
    out.push(b'e');
    out
}

/// A `.torrent` file: `{created by, info}` (no announce: peers come from
/// Shoal agents, never from public trackers).
pub fn torrent(info: &[u8]) -> Vec<u8> {
    let mut out = vec![b'd'];
    bytes(&mut out, b"created by");
    bytes(&mut out, b"shoal");
    bytes(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// A parsed value that remembers its raw bytes.
#[derive(Debug)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a [u8], Value<'a>, &'a [u8])>),
}

impl<'a> Value<'a> {
    fn get(&self, key: &[u8]) -> Option<(&Value<'a>, &'a [u8])> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _, _)| *k == key)
                .map(|(_, v, r)| (v, *r)),
            _ => None,
        }
    }
    pub fn dict_raw(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get(key).map(|(_, r)| r)
    }
    pub fn dict_int(&self, key: &[u8]) -> Option<i64> {
        match self.get(key)?.0 {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn dict_bytes(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get(key)?.0.as_bytes()
    }
    pub fn dict_list(&self, key: &[u8]) -> Option<&[Value<'a>]> {
        match self.get(key)?.0 {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Parses one complete value; trailing bytes are an error.
pub fn parse(input: &[u8]) -> Result<Value<'_>, String> {
    let (v, rest) = value(input, 0)?;
    if !rest.is_empty() {
        return Err("trailing bytes after bencoded value".into());
    }
    Ok(v)
}

fn value(input: &[u8], depth: usize) -> Result<(Value<'_>, &[u8]), String> {
    if depth > 16 {
        return Err("nested too deeply".into());
    }
    let first = *input.first().ok_or("unexpected end of data")?;
    match first {
        b'i' => {
            let end = input
                .iter()
                .position(|&b| b == b'e')
                .ok_or("unterminated integer")?;
            let s = std::str::from_utf8(&input[1..end]).map_err(|_| "bad integer")?;
            let i: i64 = s.parse().map_err(|_| format!("bad integer '{s}'"))?;
            Ok((Value::Int(i), &input[end + 1..]))
        }
        b'l' => {
            let mut rest = &input[1..];
            let mut items = Vec::new();
            loop {
                if rest.first() == Some(&b'e') {
                    return Ok((Value::List(items), &rest[1..]));
                }
                let (v, r) = value(rest, depth + 1)?;
                items.push(v);
                rest = r;
            }
        }
        b'd' => {
            let mut rest = &input[1..];
            let mut items = Vec::new();
            loop {
                if rest.first() == Some(&b'e') {
                    return Ok((Value::Dict(items), &rest[1..]));
                }
                let (k, r) = value(rest, depth + 1)?;
                let k = k.as_bytes().ok_or("dictionary key is not a string")?;
                let (v, r2) = value(r, depth + 1)?;
                let raw = &r[..r.len() - r2.len()];
                items.push((k, v, raw));
                rest = r2;
            }
        }
        b'0'..=b'9' => {
            let colon = input
                .iter()
                .position(|&b| b == b':')
                .ok_or("bad string length")?;
            let s = std::str::from_utf8(&input[..colon]).map_err(|_| "bad string length")?;
            let n: usize = s.parse().map_err(|_| "bad string length")?;
            let start = colon + 1;
            // `start + n` could overflow for a forged length.
            if n > input.len() - start {
                return Err("string runs past the end of data".into());
            }
            Ok((Value::Bytes(&input[start..start + n]), &input[start + n..]))
        }
        _ => Err(format!("unexpected byte 0x{first:02x}")),
    }
}
