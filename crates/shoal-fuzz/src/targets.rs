//! One target per parser. A target feeds the bytes through the real
//! parsing code and, when they are accepted, checks cheap invariants (a
//! re-serialized value parses back to itself, an opened envelope was
//! really signed by the key, a delta rebuilds what it promises, ...). A
//! broken invariant panics, which the engine records as a crash like any
//! other panic.

use crate::mutate::Grammar;
use crate::seeds::Fixture;
use base64::Engine;
use shoal_config::AgentConfig;
use shoal_manifest::signed::{envelope, signature_of, PrivateKey, PublicKey};
use shoal_manifest::{paths, Delta, Head, Manifest, Root, Sha256Hash, FORMAT, MIN_FORMAT};
use shoal_pack::{parse_torrent, tracker, PIECE_LEN};

/// `Ok` with a short description of what was accepted, or `Err` with why
/// the input was refused. Both feed the engine's novelty feedback.
pub type Verdict = Result<String, String>;

/// A parser under test.
pub struct Target {
    pub name: &'static str,
    /// What the target covers, for `--list` and the docs.
    pub about: &'static str,
    pub grammar: Grammar,
    pub seeds: fn(&Fixture) -> Vec<Vec<u8>>,
    /// Tokens for the mutator's dictionary, on top of the grammar's.
    pub tokens: fn(&Fixture) -> Vec<Vec<u8>>,
    pub run: fn(&Fixture, &[u8]) -> Verdict,
}

/// The body of `POST /v1/announce`, parsed exactly as the agent does
/// (`agent/src/http.rs`). One function, so the type can change in one place.
pub fn parse_announce_json(
    body: &[u8],
) -> Result<shoal_agent::peers::SignedPeer, serde_json::Error> {
    serde_json::from_slice(body)
}

/// The peer list an agent answers an announce with, parsed as a mirror
/// does (`agent/src/mirror.rs`).
pub fn parse_peer_list_json(
    body: &[u8],
) -> Result<Vec<shoal_agent::peers::SignedPeer>, serde_json::Error> {
    serde_json::from_slice(body)
}

fn utf8(data: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())
}

// --------------------------------------------------------------------------

fn run_envelope(fx: &Fixture, data: &[u8]) -> Verdict {
    let mut last = String::new();
    let mut opened = Vec::new();
    for kind in ["head", "manifest", "delta"] {
        match fx.public.open(kind, data) {
            Ok(body) => {
                // Only the key's own signature of exactly this body opens:
                // ed25519 signatures are deterministic, so it is the one
                // the key makes now.
                let sig = signature_of(data).expect("an opened envelope has a signature");
                let b64 = base64::engine::general_purpose::STANDARD;
                let genuine = signature_of(&fx.key.seal(kind, &body)).expect("sealed");
                assert_eq!(
                    b64.decode(&sig).expect("opened signature decodes"),
                    b64.decode(&genuine).expect("own signature decodes"),
                    "an envelope opened with a signature the key did not make"
                );
                // Rebuilt from its parts, as a mirror serves a generation
                // it built from a delta, it opens to the same body.
                assert_eq!(
                    fx.public.open(kind, &envelope(kind, &sig, &body)),
                    Ok(body.clone())
                );
                opened.push(kind);
            }
            Err(e) => last = e.to_string(),
        }
    }
    assert!(opened.len() <= 1, "one envelope opened as {opened:?}");
    match opened.first() {
        Some(kind) => Ok(format!("opened {kind}")),
        None => Err(last),
    }
}

fn run_head(_fx: &Fixture, data: &[u8]) -> Verdict {
    let h = Head::from_body(data).map_err(|e| e.to_string())?;
    assert!((MIN_FORMAT..=FORMAT).contains(&h.format));
    assert_eq!(
        Head::from_body(&h.body()).as_ref(),
        Ok(&h),
        "head round trip"
    );
    for now in [
        i64::MIN,
        0,
        h.expires.saturating_sub(1),
        h.expires,
        i64::MAX,
    ] {
        assert_eq!(h.check_fresh(now).is_ok(), now < h.expires);
    }
    Ok(format!("head generation={}", h.generation))
}

/// Checks what [`Manifest::from_root`] promises of an accepted manifest.
fn manifest_invariants(fx: &Fixture, m: &Manifest) {
    assert!((MIN_FORMAT..=FORMAT).contains(&m.header.format));
    assert!(m.check().is_ok());
    assert_eq!(
        Manifest::from_bundle(&m.bundle()).as_ref(),
        Ok(m),
        "manifest round trip"
    );
    // The chunks are cut where cutting from scratch cuts, and each body
    // hashes to its id.
    let again = Manifest::new(m.header.clone(), m.to_entries());
    assert_eq!(&again, m, "chunks are canonical");
    assert_eq!(again.len(), m.len(), "entry count");
    assert_eq!(again.total_bytes(), m.total_bytes(), "byte count");
    assert_eq!(again.pack_refs(), m.pack_refs(), "entries per pack");
    for (i, c) in m.chunks().iter().enumerate() {
        assert_eq!(Sha256Hash::of(&m.chunk_body(i)), c.sha256);
    }
    let entries = m.to_entries();
    for w in entries.windows(2) {
        assert!(
            w[0].path.as_bytes() < w[1].path.as_bytes(),
            "entries sorted and unique"
        );
    }
    for e in &entries {
        assert_eq!(
            m.get(&e.path).map(|r| r.to_entry()).as_ref(),
            Some(e),
            "lookup by path"
        );
        assert!(paths::check(&e.path).is_ok(), "accepted path {:?}", e.path);
    }
    let _ = m.total_bytes();
    // The delta from any base rebuilds exactly this manifest.
    let (base, base_hash) = &fx.bases[1];
    let d = m.delta_from(base, "sig".into());
    let d = Delta::from_body(&d.body()).expect("a delta made by delta_from parses");
    assert_eq!(
        d.apply(base, base_hash).as_ref(),
        Ok(m),
        "delta_from/apply round trip"
    );
}

/// The input is a bundle (root line, then one chunk body per line). The
/// chunk ids in the root are set to the hashes of the bodies given, as a
/// forger who controls both would, so mutations of the entries reach the
/// checks behind the hash (counts, first paths, order, cuts, path rules);
/// the checkpoint target keeps the ids as given.
fn run_manifest(fx: &Fixture, data: &[u8]) -> Verdict {
    let mut parts = data.split(|&b| b == b'\n');
    let mut root = Root::from_body(parts.next().unwrap_or_default()).map_err(|e| e.to_string())?;
    let bodies: Vec<&[u8]> = parts.collect();
    for (c, b) in root.chunks.iter_mut().zip(&bodies) {
        c.sha256 = Sha256Hash::of(b);
    }
    let m = Manifest::from_root(root, bodies).map_err(|e| e.to_string())?;
    manifest_invariants(fx, &m);
    Ok(format!(
        "manifest entries={} packs={} symlinks={}",
        m.len(),
        m.header.packs.len(),
        m.entries().filter(|e| e.file().is_none()).count()
    ))
}

/// The plain words of an error message (no numbers, hashes, quoted
/// values), so an accepted shape that mentions an error names its kind.
fn words(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.trim_end_matches([':', ',', ';', '.', ')']))
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_delta(fx: &Fixture, data: &[u8]) -> Verdict {
    let d = Delta::from_body(data).map_err(|e| e.to_string())?;
    assert!((MIN_FORMAT..=FORMAT).contains(&d.format));
    assert_eq!(
        Delta::from_body(&d.body()).as_ref(),
        Ok(&d),
        "delta round trip"
    );
    let mut applied = Vec::new();
    for (base, hash) in &fx.bases {
        match d.apply(base, hash) {
            Ok(m) => {
                assert_eq!(
                    m.sha256(),
                    d.manifest_sha256,
                    "applied delta hashes as promised"
                );
                assert_eq!(m.header, d.header);
                assert!(m.check().is_ok());
                applied.push(format!("applies to {}", base.header.generation));
            }
            Err(e) => applied.push(words(&e.to_string())),
        }
    }
    Ok(format!(
        "delta upserts={} removals={} {}",
        d.upserts.len(),
        d.removals.len(),
        applied.join(";")
    ))
}

/// A checkpoint is the full signed manifest of one generation
/// (`docs/manifests/<G>.shoal`, `GET /v1/manifest/{G}`). A mirror gets one
/// from an upstream or its store, or rebuilds one from a delta: it applies
/// the delta and wraps the result with the origin's signature that the
/// delta carries (docs/design-decisions.md). The input is a manifest body
/// (sealed with the test key, then opened and parsed as a mirror does) or
/// a delta body (applied to every base, then rebuilt into a checkpoint).
fn run_checkpoint(fx: &Fixture, data: &[u8]) -> Verdict {
    match checkpoint_from_manifest(fx, data) {
        Ok(v) => Ok(v),
        // Refused as a manifest: maybe it is a delta. The refusal reported
        // is that of the kind the input looks like.
        Err(as_manifest) => checkpoint_from_delta(fx, data).map_err(|as_delta| {
            if data.windows(9).any(|w| w == b"\"upserts\"") {
                as_delta
            } else {
                as_manifest
            }
        }),
    }
}

fn checkpoint_from_manifest(fx: &Fixture, data: &[u8]) -> Verdict {
    // The input is a bundle: the root (sealed and opened as a mirror
    // does) and the chunk bodies as `GET /v1/chunk/{sha256}` serves them.
    let nl = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (root_body, chunks) = (&data[..nl], data.get(nl + 1..));
    let env = fx.key.seal("manifest", root_body);
    let body = fx
        .public
        .open("manifest", &env)
        .expect("a freshly sealed checkpoint opens");
    assert_eq!(body, root_body, "the envelope carries the body unchanged");
    let bodies: Vec<&[u8]> = chunks
        .map(|c| c.split(|&b| b == b'\n').collect())
        .unwrap_or_default();
    let via_envelope = Root::from_body(&body).and_then(|r| Manifest::from_root(r, bodies));
    assert_eq!(via_envelope, Manifest::from_bundle(data));
    let m = via_envelope.map_err(|e| e.to_string())?;
    manifest_invariants(fx, &m);
    // Served again as its canonical root with the origin's signature, it
    // opens exactly when the origin signed the canonical root.
    let sig = signature_of(&env).expect("sig");
    let rebuilt = envelope("manifest", &sig, &m.body());
    assert_eq!(
        fx.public.open("manifest", &rebuilt).is_ok(),
        m.body() == root_body
    );
    let head = Head {
        format: FORMAT,
        generation: m.header.generation,
        manifest_sha256: Sha256Hash::of(&body),
        created: m.header.created,
        expires: m.header.expires,
    };
    assert_eq!(Head::from_body(&head.body()), Ok(head));
    Ok(format!("checkpoint entries={}", m.len()))
}

fn checkpoint_from_delta(fx: &Fixture, data: &[u8]) -> Verdict {
    let d = Delta::from_body(data).map_err(|e| e.to_string())?;
    let mut outcome = Vec::new();
    for (base, hash) in &fx.bases {
        let Ok(m) = d.apply(base, hash) else {
            continue;
        };
        let body = m.body();
        let rebuilt = envelope("manifest", &d.manifest_signature, &body);
        match fx.public.open("manifest", &rebuilt) {
            Ok(opened) => {
                assert_eq!(opened, body);
                // Only the origin's own signature of exactly this body opens.
                let b64 = base64::engine::general_purpose::STANDARD;
                let genuine = signature_of(&fx.key.seal("manifest", &body)).expect("sealed");
                assert_eq!(
                    b64.decode(&d.manifest_signature).ok(),
                    b64.decode(&genuine).ok(),
                    "a rebuilt checkpoint opened with a signature the key did not make"
                );
                let bodies: Vec<Vec<u8>> = (0..m.chunks().len()).map(|i| m.chunk_body(i)).collect();
                let root = Root::from_body(&opened).expect("a rebuilt root parses");
                assert_eq!(Manifest::from_root(root, bodies).as_ref(), Ok(&m));
                outcome.push("rebuilt checkpoint opens");
            }
            Err(_) => outcome.push("rebuilt checkpoint refused"),
        }
    }
    if outcome.is_empty() {
        return Err("delta applies to no base".into());
    }
    Ok(format!("checkpoint from delta: {}", outcome.join(";")))
}

fn run_torrent(_fx: &Fixture, data: &[u8]) -> Verdict {
    let p = parse_torrent(data, None).map_err(|e| e.to_string())?;
    let ih = hex::encode(p.info_hash);
    assert!(
        parse_torrent(data, Some(&ih)).is_ok(),
        "its own info hash is accepted"
    );
    let other = if ih == "00".repeat(20) {
        "11".repeat(20)
    } else {
        "00".repeat(20)
    };
    assert!(
        parse_torrent(data, Some(&other)).is_err(),
        "a foreign info hash is refused"
    );
    assert_eq!(p.packed_from, p.pieces.len());
    let (aligned, packed) = p.files.split_at(p.packed_from);
    for w in aligned.windows(2) {
        assert!(w[0].0 < w[1].0, "aligned files sorted and unique");
    }
    let mut seen = std::collections::HashSet::new();
    assert!(
        p.files.iter().all(|f| seen.insert(f.0)),
        "every content listed once"
    );
    for ((_, len), ps) in aligned.iter().zip(&p.pieces) {
        assert!(*len > 0);
        assert_eq!(ps.len() as u64, len.div_ceil(PIECE_LEN));
    }
    assert!(packed.iter().all(|(_, len)| *len > 0 && *len < PIECE_LEN));
    let packed_bytes: u64 = packed.iter().map(|f| f.1).sum();
    assert_eq!(
        p.packed_pieces.len() as u64,
        packed_bytes.div_ceil(PIECE_LEN)
    );
    // Built again from what was parsed, the pack parses to the same.
    let again = p.rebuild();
    let q = parse_torrent(&again.torrent, Some(&hex::encode(again.info_hash)))
        .expect("a rebuilt pack parses");
    assert_eq!(
        (
            &q.name,
            &q.files,
            &q.pieces,
            q.packed_from,
            &q.packed_pieces
        ),
        (
            &p.name,
            &p.files,
            &p.pieces,
            p.packed_from,
            &p.packed_pieces
        )
    );
    Ok(format!("torrent files={}", p.files.len()))
}

fn run_announce(fx: &Fixture, data: &[u8]) -> Verdict {
    let one = parse_announce_json(data);
    if let Ok(p) = &one {
        let back = serde_json::to_vec(p).expect("serializes");
        assert_eq!(
            parse_announce_json(&back).as_ref().ok(),
            Some(p),
            "announce round trip"
        );
    }
    let list = parse_peer_list_json(data);
    if let Ok(l) = &list {
        let back = serde_json::to_vec(l).expect("serializes");
        assert_eq!(
            parse_peer_list_json(&back).as_ref().ok(),
            Some(l),
            "peer list round trip"
        );
    }
    // What an agent then does with an entry: verify it (signature, role,
    // freshness) and merge it into its table.
    let origin = fx.public.to_string_key();
    let ttl = std::time::Duration::from_secs(600);
    let check = |p: &shoal_agent::peers::SignedPeer| {
        let r = p.verify(&origin, p.at, ttl);
        let mut t = shoal_agent::peers::PeerTable::default();
        if r.is_ok() {
            t.merge(p.clone(), "self").expect("a verified entry merges");
            assert_eq!(t.list().len(), 1);
        }
        r.map(|_| "verified").unwrap_or("refused")
    };
    match (one, list) {
        (Ok(p), _) => Ok(format!("announce {}", check(&p))),
        (_, Ok(l)) => Ok(format!(
            "peer list of {} ({} verified)",
            l.len(),
            l.iter().filter(|p| check(p) == "verified").count()
        )),
        (Err(e), Err(_)) => Err(e.to_string()),
    }
}

fn run_tracker(_fx: &Fixture, data: &[u8]) -> Verdict {
    let q = tracker::parse_announce(utf8(data)?).map_err(|e| e.to_string())?;
    assert!(q.port > 0);
    assert_eq!(
        tracker::parse_announce(&q.to_query()).as_ref(),
        Ok(&q),
        "query round trip"
    );
    Ok(format!(
        "announce event={:?} ip={}",
        q.event,
        q.ip.is_some()
    ))
}

fn run_config(_fx: &Fixture, data: &[u8]) -> Verdict {
    let c = AgentConfig::from_yaml(utf8(data)?, "fuzz.yaml").map_err(|e| e.to_string())?;
    let y = c.to_yaml();
    match AgentConfig::from_yaml(&y, "rendered.yaml") {
        Ok(again) => assert_eq!(again, c, "config round trip through to_yaml"),
        Err(e) => panic!("a loaded config renders to YAML that does not load: {e}\n{y}"),
    }
    Ok(format!("config {}", c.role))
}

fn run_site(_fx: &Fixture, data: &[u8]) -> Verdict {
    let site = shoal_provisioner::site::Site::from_yaml(utf8(data)?, "site.yaml")
        .map_err(|e| e.to_string())?;
    if let Err(e) = shoal_provisioner::render::verify_agent_configs(&site) {
        panic!("a valid site renders an agent config that does not load: {e}");
    }
    Ok(format!("site hosts={}", site.hosts.len()))
}

fn run_status(_fx: &Fixture, data: &[u8]) -> Verdict {
    let s: shoal_status::Status = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let back = serde_json::to_vec(&s).expect("status serializes");
    let again: shoal_status::Status = serde_json::from_slice(&back).expect("status parses back");
    assert_eq!(again, s, "status round trip");
    Ok(format!(
        "status peers={} packs={}",
        s.peers.len(),
        s.packs.len()
    ))
}

fn run_keys(_fx: &Fixture, data: &[u8]) -> Verdict {
    let text = utf8(data)?;
    let mut what = Vec::new();
    if let Ok(k) = PrivateKey::from_file_text(text) {
        let again = PrivateKey::from_file_text(&k.to_file_text()).expect("key file round trip");
        assert_eq!(again.public(), k.public());
        what.push("private key");
    }
    if let Ok(p) = PublicKey::parse(text) {
        assert_eq!(PublicKey::parse(&p.to_string_key()).as_ref(), Ok(&p));
        // the config's check accepts every key the agent can use
        assert!(shoal_config::is_public_key(text.trim()), "{text:?}");
        what.push("public key");
    }
    if what.is_empty() {
        return Err(match PublicKey::parse(text) {
            Err(e) if text.trim_start().starts_with("ed25519:") => e.to_string(),
            _ => PrivateKey::from_file_text(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        });
    }
    Ok(what.join(", "))
}

/// Lexically resolves `target` from the directory of `link`; `None` if it
/// climbs above the root.
fn resolve(link: &str, target: &str) -> Option<usize> {
    let mut depth = link.split('/').count() - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => depth = depth.checked_sub(1)?,
            _ => depth += 1,
        }
    }
    Some(depth)
}

fn run_paths(_fx: &Fixture, data: &[u8]) -> Verdict {
    let text = utf8(data)?;
    let (link, target) = text.split_once('\n').unwrap_or((text, ""));
    paths::check(link)?;
    assert!(!link.starts_with('/') && !link.contains('\0') && link.len() <= paths::MAX_PATH);
    for c in link.split('/') {
        assert!(!matches!(c, "" | "." | ".."), "component {c:?} of {link:?}");
        assert!(c.len() <= paths::MAX_COMPONENT);
    }
    if target.is_empty() {
        return Ok("path".into());
    }
    paths::check_symlink(link, target)?;
    assert!(!target.starts_with('/') && !target.contains('\0'));
    assert!(
        resolve(link, target).is_some(),
        "{link:?} -> {target:?} leaves the tree"
    );
    Ok("symlink".into())
}

// --------------------------------------------------------------------------

fn envelope_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.envelopes.clone()
}
fn head_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.heads.iter().map(Head::body).collect()
}
fn manifest_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.manifests.iter().map(Manifest::bundle).collect()
}
fn delta_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.deltas.iter().map(Delta::body).collect()
}
fn checkpoint_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut v = manifest_seeds(fx);
    v.extend(delta_seeds(fx));
    v
}
fn torrent_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.torrents.clone()
}
fn announce_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.announces.clone()
}
fn tracker_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.queries.clone()
}
fn config_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.configs.clone()
}
fn site_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.sites.clone()
}
fn status_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.statuses.clone()
}
fn key_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.keys.clone()
}
fn path_seeds(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = fx.manifests[0]
        .entries()
        .map(|e| match e.symlink() {
            Some(target) => format!("{}\n{target}", e.path()),
            None => e.path().to_owned(),
        })
        .map(String::into_bytes)
        .collect();
    v.push(b"a/b/c\n../../x".to_vec());
    v
}

fn key_tokens(_: &Fixture) -> Vec<Vec<u8>> {
    strings(&[
        "ed25519:",
        "shoal-ed25519-private-key ",
        " ",
        "\n",
        "0",
        "f",
        "F",
        "g",
    ])
}

fn path_tokens(_: &Fixture) -> Vec<Vec<u8>> {
    strings(&[
        "..", ".", "/", "//", "../", "/..", "\n", "\0", "\n../", "\n/",
    ])
}

fn strings(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn json_tokens(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for m in &fx.manifests {
        v.push(format!("\"{}\"", m.sha256()).into_bytes());
        for e in m.entries() {
            v.push(format!("\"{}\"", e.path()).into_bytes());
        }
    }
    for d in &fx.deltas {
        v.push(format!("\"{}\"", d.manifest_signature).into_bytes());
    }
    v
}

fn envelope_tokens(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.envelopes
        .iter()
        .filter_map(|e| signature_of(e).map(String::into_bytes))
        .collect()
}

fn no_tokens(_: &Fixture) -> Vec<Vec<u8>> {
    Vec::new()
}

fn torrent_tokens(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut v = strings(&["2:ab", "64:", "20:", "40:"]);
    for m in &fx.manifests {
        let h = m.sha256().to_hex();
        v.push(format!("2:{}", &h[..2]).into_bytes());
        v.push(format!("64:{h}").into_bytes());
    }
    v
}

fn config_tokens(_: &Fixture) -> Vec<Vec<u8>> {
    strings(&[
        "key:",
        "publish_interval:",
        "manifest_ttl:",
        "pack_max_files:",
        "pack_max_bytes:",
        "immutable:",
        "exclude:",
        "keep_deltas:",
        "origin_key:",
        "poll_interval:",
        "delete_grace:",
        "trace:",
        "trace_info:",
        "maintainer:",
        "sponsor:",
        "country:",
        "location:",
        "throughput:",
        "dht:",
        "lsd:",
        "upnp:",
        "trackers:",
        "peers:",
        "upload_limit:",
        "download_limit:",
        "announce_interval:",
        "format:",
        "level:",
        "advertise_url:",
        "profile:",
    ])
}

fn site_tokens(_: &Fixture) -> Vec<Vec<u8>> {
    strings(&[
        "host:",
        "address:",
        "origin_public_key:",
        "repo_dir:",
        "state_dir:",
        "binary_source:",
        "binary_checksum:",
        "install_dir:",
        "config_dir:",
        "unit_dir:",
        "user:",
        "group:",
        "manage_user:",
        "service_manager:",
        "service_ensure:",
        "manage_web:",
        "web_server_name:",
        "web_port:",
        "log_format:",
        "agent_name:",
        "advertise_url:",
        "gluster:",
        "volume:",
        "bricks:",
        "replica:",
        "servers:",
        "mirror1.example.org",
        "archive.example.org",
        "systemd",
        "running",
    ])
}

/// Every target, in the order `--target all` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "envelope",
        about: "signed envelope: header line, base64 ed25519 signature, bounded zstd body \
                (PublicKey::open for head, manifest and delta; signature_of; envelope)",
        grammar: Grammar::Envelope,
        seeds: envelope_seeds,
        tokens: envelope_tokens,
        run: run_envelope,
    },
    Target {
        name: "head",
        about: "head body (Head::from_body, check_fresh)",
        grammar: Grammar::Json,
        seeds: head_seeds,
        tokens: json_tokens,
        run: run_head,
    },
    Target {
        name: "manifest",
        about: "manifest bundle (root line + chunk bodies, chunk ids fixed up; \
                Manifest::from_root: chunk counts, first paths, order, cuts, JSON, path rules, \
                symlink targets, packs, file/directory clashes; delta_from + apply round trip)",
        grammar: Grammar::Json,
        seeds: manifest_seeds,
        tokens: json_tokens,
        run: run_manifest,
    },
    Target {
        name: "delta",
        about: "delta body (Delta::from_body, then Delta::apply to five base generations)",
        grammar: Grammar::Json,
        seeds: delta_seeds,
        tokens: json_tokens,
        run: run_delta,
    },
    Target {
        name: "checkpoint",
        about: "checkpoint (the signed manifest root of a generation and its chunks): a \
                manifest bundle whose root is sealed with the test key, opened and parsed with \
                the chunks as a mirror does (chunk ids as given: a body that does not hash to \
                its id is refused); or a delta applied to every base and rebuilt into a \
                checkpoint with the signature it carries",
        grammar: Grammar::Json,
        seeds: checkpoint_seeds,
        tokens: json_tokens,
        run: run_checkpoint,
    },
    Target {
        name: "torrent",
        about: "pack .torrent (shoal_pack::parse_torrent: bencode parser and pack shape), \
                rebuilt with shoal_pack::build",
        grammar: Grammar::Bencode,
        seeds: torrent_seeds,
        tokens: torrent_tokens,
        run: run_torrent,
    },
    Target {
        name: "announce",
        about: "announce JSON: POST /v1/announce body (PeerInfo) and the peer list answered",
        grammar: Grammar::Json,
        seeds: announce_seeds,
        tokens: no_tokens,
        run: run_announce,
    },
    Target {
        name: "tracker",
        about: "tracker query: GET /announce query string (shoal_pack::tracker::parse_announce)",
        grammar: Grammar::Query,
        seeds: tracker_seeds,
        tokens: no_tokens,
        run: run_tracker,
    },
    Target {
        name: "config",
        about: "agent config YAML (shoal_config::AgentConfig::from_yaml, to_yaml round trip)",
        grammar: Grammar::Yaml,
        seeds: config_seeds,
        tokens: config_tokens,
        run: run_config,
    },
    Target {
        name: "site",
        about: "provisioner site.yaml (shoal_provisioner::site::Site::from_yaml; rendered agent \
                configs must load)",
        grammar: Grammar::Yaml,
        seeds: site_seeds,
        tokens: site_tokens,
        run: run_site,
    },
    Target {
        name: "status",
        about: "GET /status JSON as `shoal status` reads it (shoal_status::Status)",
        grammar: Grammar::Json,
        seeds: status_seeds,
        tokens: no_tokens,
        run: run_status,
    },
    Target {
        name: "keys",
        about: "key files and key strings (PrivateKey::from_file_text, PublicKey::parse, \
                shoal_config::is_public_key)",
        grammar: Grammar::Text,
        seeds: key_seeds,
        tokens: key_tokens,
        run: run_keys,
    },
    Target {
        name: "paths",
        about: "path rules (shoal_manifest::paths::check, check_symlink) against an independent \
                resolver",
        grammar: Grammar::Text,
        seeds: path_seeds,
        tokens: path_tokens,
        run: run_paths,
    },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
