//! The starting corpus, made in code with the real writers: manifests,
//! deltas and heads of a small repository over three generations, sealed
//! with a fixed test key; pack torrents from [`shoal_pack::build_shaped`] over
//! generated contents; announce JSON, tracker queries as librqbit sends
//! them, agent configs and site files.

use shoal_config::AgentConfig;
use shoal_manifest::signed::{signature_of, PrivateKey, PublicKey};
use shoal_manifest::{
    Delta, Entry, EntryKind, Head, Header, Manifest, PackRef, Sha256Hash, FORMAT,
};
use shoal_pack::tracker::{AnnounceEvent, AnnounceQuery};
use shoal_pack::{hash_stream, Content};

/// Seed of the test key (not secret: it signs nothing but fuzz inputs).
const TEST_KEY_SEED: &str = "5f8d2b1c0a4e6f7d9c3b2a1908f7e6d5c4b3a29180706f5e4d3c2b1a09f8e7d6";

/// Everything the targets and their seeds are made from.
pub struct Fixture {
    pub key: PrivateKey,
    pub public: PublicKey,
    /// Generations 1, 2, 3 of one repository, an empty generation 1 and a
    /// generation 4 of several chunks.
    pub manifests: Vec<Manifest>,
    /// Manifests a delta may be applied to, with their hashes.
    pub bases: Vec<(Manifest, Sha256Hash)>,
    pub deltas: Vec<Delta>,
    pub heads: Vec<Head>,
    /// Signed envelopes of every head, manifest and delta.
    pub envelopes: Vec<Vec<u8>>,
    /// Pack `.torrent` files.
    pub torrents: Vec<Vec<u8>>,
    /// `POST /v1/announce` bodies and the peer lists answered to them.
    pub announces: Vec<Vec<u8>>,
    /// `GET /announce` query strings.
    pub queries: Vec<Vec<u8>>,
    /// Agent config files.
    pub configs: Vec<Vec<u8>>,
    /// `site.yaml` files.
    pub sites: Vec<Vec<u8>>,
    /// `GET /status` documents.
    pub statuses: Vec<Vec<u8>>,
    /// Private key files and public key strings.
    pub keys: Vec<Vec<u8>>,
}

fn file(path: &str, content: &[u8], pack: Option<u64>, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            size: content.len() as u64,
            sha256: Sha256Hash::of(content),
            pack,
        },
        mode,
        mtime_ns: 1_700_000_000_123_456_789,
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::Symlink {
            target: target.into(),
        },
        mode: 0o777,
        mtime_ns: -5,
    }
}

fn pack(id: u64, files: u64, bytes: u64) -> PackRef {
    PackRef {
        id,
        info_hash: hex::encode(&Sha256Hash::of(&id.to_le_bytes()).0[..20]),
        files,
        bytes,
    }
}

fn manifest(
    generation: u64,
    profile: &str,
    prev: Option<&Manifest>,
    packs: Vec<PackRef>,
    mut entries: Vec<Entry>,
) -> Manifest {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let m = Manifest::new(
        Header {
            format: FORMAT,
            generation,
            profile: profile.into(),
            created: 1_700_000_000 + generation as i64 * 300,
            expires: 1_700_604_800 + generation as i64 * 300,
            prev_sha256: prev.map(Manifest::sha256),
            packs,
        },
        entries,
    );
    m.check().expect("seed manifest is valid");
    m
}

fn content(data: &[u8]) -> Content {
    hash_stream(&mut &data[..], None)
        .expect("hashing memory")
        .into()
}

/// Bytes that look like a file: a pattern that differs per `tag`.
fn blob(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag))
        .collect()
}

fn query(
    info_hash: [u8; 20],
    peer_id: &[u8; 20],
    port: u16,
    event: Option<AnnounceEvent>,
    extra: &str,
) -> Vec<u8> {
    let q = AnnounceQuery {
        info_hash,
        peer_id: *peer_id,
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1 << 20,
        compact: true,
        no_peer_id: false,
        event,
        numwant: None,
        ip: None,
        agent: None,
    };
    format!("{}{extra}", q.to_query()).into_bytes()
}

const MIRROR_YAML: &str = "\
role: mirror
repo: /srv/mirror/debian
state: /var/lib/shoal
listen: 0.0.0.0:8780
mirror:
  origin_key: ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
  upstreams: [http://archive.example.org:8780]
";

const ORIGIN_YAML: &str = "\
# origin of the fuzz fixture
role: origin
name: archive
repo: /srv/mirror/debian
state: /var/lib/shoal
profile: debian
listen: 127.0.0.1:8780
peer_listen: '[::]:8781'
advertise_url: http://archive.example.org:8780
origin:
  key: /etc/shoal/origin.key
  publish_interval: 5m
  manifest_ttl: 7d
  pack_max_files: 10000
  pack_max_bytes: 4GiB
  immutable: ['pool/**']
  exclude: ['**/.tmp*', lost+found]
  keep_deltas: 64
network:
  dht: false
  lsd: false
  upnp: false
  trackers: []
  peers: ['192.0.2.1:6881', '[2001:db8::1]:6881']
  upload_limit: 100MiB
  download_limit: 0
  announce_interval: 30s
log:
  format: json
  level: shoal_agent=debug,librqbit=warn
";

const MIRROR_FLOW_YAML: &str =
    "{role: mirror, repo: /data/r, state: /data/s, listen: '[::1]:9780', \
mirror: {origin_key: 'ed25519:0000000000000000000000000000000000000000000000000000000000000001', \
upstreams: ['http://[::1]:8780', 'https://m1.example:443'], poll_interval: 1h 30m, \
delete_grace: 3600, trace: false}, network: {announce_interval: 1}}\n";

const SITE_MINIMAL: &str = "\
defaults: {binary_source: /usr/local/bin/shoal-agent}
origin:
  host: archive.example.org
  origin_public_key: ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
mirrors:
  - host: mirror1.example.org
  - host: mirror2.example.org
    upstreams: [mirror1.example.org]
    listen: '[::]:9780'
";

/// What [`documents`] makes.
struct Documents {
    manifests: Vec<Manifest>,
    bases: Vec<(Manifest, Sha256Hash)>,
    deltas: Vec<Delta>,
    heads: Vec<Head>,
    envelopes: Vec<Vec<u8>>,
}

/// Signed documents: manifests of three generations and an empty one, the
/// deltas between them, their heads and every envelope.
fn documents(key: &PrivateKey) -> Documents {
    // --- manifests, deltas, heads -----------------------------------
    let deb = blob(1, 40_000);
    let dsc = blob(2, 1_234);
    let release = b"Origin: Debian\nSuite: stable\n".to_vec();
    let m1 = manifest(
        1,
        "debian",
        None,
        vec![pack(1, 3, 41_263), pack(2, 1, 1_234)],
        vec![
            file("dists/stable/InRelease", &release, Some(1), 0o644),
            file(
                "dists/stable/main/binary-amd64/Packages.gz",
                &blob(3, 200),
                Some(1),
                0o644,
            ),
            file(
                "pool/main/h/hello/hello_2.10-3_amd64.deb",
                &deb,
                Some(1),
                0o644,
            ),
            file("pool/main/h/hello/hello_2.10-3.dsc", &dsc, Some(2), 0o600),
            file(
                "pool/main/\u{fc}/\u{fc}n\u{ef}code_1.0_all.deb",
                &blob(4, 10),
                Some(1),
                0o644,
            ),
            file("project/trace/archive", b"", None, 0o644),
            symlink("dists/bookworm", "stable"),
            symlink(
                "dists/stable/main/i18n/hello.dsc",
                "../../../../pool/main/h/hello/./hello_2.10-3.dsc",
            ),
        ],
    );
    let m2 = manifest(
        2,
        "debian",
        Some(&m1),
        vec![pack(1, 3, 41_263), pack(3, 2, 16_420)],
        vec![
            file(
                "dists/stable/InRelease",
                b"Origin: Debian\nSuite: stable\nDate: 2\n",
                Some(3),
                0o644,
            ),
            file(
                "dists/stable/main/binary-amd64/Packages.gz",
                &blob(3, 200),
                Some(1),
                0o644,
            ),
            file(
                "pool/main/h/hello/hello_2.10-3_amd64.deb",
                &deb,
                Some(1),
                0o644,
            ),
            file(
                "pool/main/h/hello/hello_2.12-1_amd64.deb",
                &blob(5, 16_384),
                Some(3),
                0o644,
            ),
            file(
                "pool/main/\u{fc}/\u{fc}n\u{ef}code_1.0_all.deb",
                &blob(4, 10),
                Some(1),
                0o644,
            ),
            file("project/trace/archive", b"2", Some(3), 0o644),
            symlink("dists/bookworm", "stable"),
        ],
    );
    let mut many: Vec<Entry> = (0..40)
        .map(|i| {
            file(
                &format!("Packages/p/pkg{i:03}-1.0-1.x86_64.rpm"),
                &blob(i as u8, 100 + i),
                Some(7),
                0o644,
            )
        })
        .collect();
    many.push(file("repodata/repomd.xml", b"<repomd/>", Some(7), 0o644));
    many.push(symlink("repodata/latest", "repomd.xml"));
    let m3 = manifest(3, "rpm", Some(&m2), vec![pack(7, 41, 5_000)], many);
    // Enough entries for several chunks (64 per chunk on average), so
    // chunk boundaries, counts and first paths are fuzzed too.
    let chunked: Vec<Entry> = (0..200)
        .map(|i| file(&format!("d/f{i:03}"), &[i as u8], Some(7), 0o644))
        .collect();
    let m4 = manifest(4, "generic", Some(&m3), vec![pack(7, 200, 200)], chunked);
    assert!(m4.chunks().len() > 1, "the chunked seed has several chunks");
    let empty = manifest(1, "generic", None, vec![], vec![]);

    let sealed_sig = |m: &Manifest| signature_of(&key.seal("manifest", &m.body())).expect("sig");
    let deltas = vec![
        m2.delta_from(&m1, sealed_sig(&m2)),
        m3.delta_from(&m2, sealed_sig(&m3)),
        m1.delta_from(&empty, sealed_sig(&m1)),
        empty.delta_from(&m3, sealed_sig(&empty)),
        m4.delta_from(&m3, sealed_sig(&m4)),
    ];
    let manifests = vec![
        m1.clone(),
        m2.clone(),
        m3.clone(),
        empty.clone(),
        m4.clone(),
    ];
    let heads: Vec<Head> = manifests
        .iter()
        .map(|m| Head {
            format: FORMAT,
            generation: m.header.generation,
            manifest_sha256: m.sha256(),
            created: m.header.created,
            expires: m.header.expires,
        })
        .collect();
    let bases = [&empty, &m1, &m2, &m3, &m4]
        .into_iter()
        .map(|m| (m.clone(), m.sha256()))
        .collect();
    let mut envelopes = Vec::new();
    for h in &heads {
        envelopes.push(key.seal("head", &h.body()));
    }
    for m in &manifests {
        envelopes.push(key.seal("manifest", &m.body()));
    }
    for d in &deltas {
        envelopes.push(key.seal("delta", &d.body()));
    }

    Documents {
        manifests,
        bases,
        deltas,
        heads,
        envelopes,
    }
}

/// Pack `.torrent` files: tiny, piece-sized, mixed and packed, in both
/// shapes (one stream file; a file per content, as formats 1-3 made).
fn torrents() -> Vec<Vec<u8>> {
    // --- pack torrents -------------------------------------------------
    let piece = shoal_pack::PIECE_LEN as usize;
    let shaped = |name: &str, datas: &[Vec<u8>], shape| {
        let contents: Vec<Content> = datas.iter().map(|d| content(d)).collect();
        shoal_pack::build_shaped(
            name,
            &contents,
            &mut |c| {
                let d = datas
                    .iter()
                    .find(|d| content(d).sha256 == c.sha256)
                    .expect("seed data");
                Ok(d.clone())
            },
            shape,
        )
        .expect("building a seed pack")
        .torrent
    };
    let pack = |name: &str, datas: &[Vec<u8>]| shaped(name, datas, shoal_pack::Shape::Stream);
    let mixed = [
        blob(10, 1000),
        blob(11, 2 * piece),
        blob(12, 5),
        blob(13, piece + 1),
    ];
    let torrents = vec![
        pack("shoal-pack-1", &[b"hello".to_vec()]),
        pack("shoal-pack-2", &[blob(9, piece)]),
        pack("shoal-pack-3", &mixed),
        shaped("shoal-pack-4", &mixed, shoal_pack::Shape::Files),
        pack(
            "shoal-pack-5",
            &(0..12u8)
                .map(|i| blob(i, 37 * i as usize + 1))
                .collect::<Vec<_>>(),
        ),
    ];
    torrents
}

/// `POST /v1/announce` bodies and the peer lists answered to them.
fn announces(key: &PrivateKey) -> Vec<Vec<u8>> {
    // --- announce JSON ----------------------------------------------
    // Signed peer entries: a mirror's (its own node key) and the
    // origin's (the origin key), as agents announce and relay them.
    let peer = |name: &str, role: &str, url: &str, addr: &str, g: u64, k: &PrivateKey| {
        let info = shoal_agent::peers::PeerInfo {
            name: name.into(),
            role: role.into(),
            url: url.into(),
            peer_addr: addr.parse().expect("seed address"),
            generation: g,
        };
        serde_json::to_string(&shoal_agent::peers::SignedPeer::sign(
            info,
            k,
            1_700_000_000,
        ))
        .expect("serializes")
    };
    let node = PrivateKey::generate();
    let one = peer(
        "mirror1",
        "mirror",
        "http://192.0.2.11:8780",
        "192.0.2.11:8781",
        3,
        &node,
    );
    let six = peer(
        "m-6",
        "origin",
        "https://[2001:db8::2]:8780/",
        "[2001:db8::2]:8781",
        u64::MAX,
        key,
    );
    let announces = vec![
        one.as_bytes().to_vec(),
        six.as_bytes().to_vec(),
        format!("[{one},{six}]").into_bytes(),
        format!(" [ {one} ]\n").into_bytes(),
    ];
    announces
}

/// `GET /announce` query strings as librqbit and other clients send them.
fn queries() -> Vec<Vec<u8>> {
    // --- tracker queries --------------------------------------------
    let ih1: [u8; 20] = core::array::from_fn(|i| i as u8 + 1);
    let ih2: [u8; 20] = core::array::from_fn(|i| 255 - i as u8);
    let ih3: [u8; 20] = *b"abcdefghij0123456789";
    let queries = vec![
        query(
            ih1,
            b"-rQ9100-abcdefghijkl",
            6881,
            Some(AnnounceEvent::Started),
            "&no_peer_id=0&key=12345",
        ),
        query(
            ih2,
            b"-rQ9100-\x00\x01\x02\x03\xff\xfe\xfd\xfc%&=+",
            65535,
            None,
            "&ip=127.0.0.1&numwant=50",
        ),
        query(
            ih3,
            b"-TR3000-000000000000",
            1,
            None,
            "&ip=%3A%3A1&supportcrypto=1&event=completed",
        ),
        b"info_hash=%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
          &peer_id=AAAAAAAAAAAAAAAAAAAA&port=8781&uploaded=0&downloaded=0&left=0"
            .to_vec(),
    ];
    queries
}

/// Agent config files.
fn configs() -> Vec<Vec<u8>> {
    // --- configs ----------------------------------------------------
    let full = AgentConfig::from_yaml(ORIGIN_YAML, "origin.yaml").expect("seed config");
    let configs = vec![
        MIRROR_YAML.as_bytes().to_vec(),
        ORIGIN_YAML.as_bytes().to_vec(),
        full.to_yaml().into_bytes(),
        MIRROR_FLOW_YAML.as_bytes().to_vec(),
    ];
    configs
}

/// `site.yaml` files.
fn sites() -> Vec<Vec<u8>> {
    // --- sites ------------------------------------------------------
    let sites = vec![
        include_str!("../../../site.example.yaml")
            .as_bytes()
            .to_vec(),
        SITE_MINIMAL.as_bytes().to_vec(),
    ];
    sites
}

/// `GET /status` documents.
fn statuses() -> Vec<Vec<u8>> {
    // --- status documents and keys ------------------------------------
    let status = shoal_status::Status {
        role: "mirror".into(),
        name: "mirror1".into(),
        version: "0.1.0".into(),
        url: "http://192.0.2.11:8780".into(),
        peer_addr: "192.0.2.11:8781".into(),
        profile: "debian".into(),
        generation_applied: 3,
        generation_known: 4,
        generation_created: 1_700_000_900,
        generation_expires: 1_700_605_700,
        state: "downloading".into(),
        last_sync_seconds: Some(12.25),
        last_success: Some(1_700_000_000),
        sync_failures: 2,
        feeder_handovers: 1,
        refusals: [("head".to_string(), 1)].into_iter().collect(),
        last_error: Some("fetching pack 7: no peer has it yet".into()),
        upstream_error: Some("http://192.0.2.1:8780/v1/head: cannot connect".into()),
        publish_waiting: Some(
            "Archive-Update-in-Progress-m1 exists since 2026-11-30T00:12:00Z".into(),
        ),
        files: 41,
        bytes: 5_000,
        memory_bytes: 60 << 20,
        memory_peak_bytes: 90 << 20,
        pending_deletions: 2,
        peers: vec![shoal_status::PeerStatus {
            name: "archive".into(),
            role: "origin".into(),
            url: "http://192.0.2.10:8780".into(),
            peer_addr: "192.0.2.10:8781".into(),
            generation: 4,
            last_seen_seconds: 3,
        }],
        bytes_down: [
            ("origin".to_string(), 4_000u64),
            ("mirrors".to_string(), 1_000),
        ]
        .into_iter()
        .collect(),
        bytes_down_by_peer: [("archive".to_string(), 4_000u64)].into_iter().collect(),
        bytes_up: [("mirrors".to_string(), 77u64)].into_iter().collect(),
        packs: vec![shoal_status::PackStatus {
            id: 7,
            info_hash: "00".repeat(20),
            files: 41,
            bytes: 5_000,
            have_bytes: 2_500,
            state: "downloading".into(),
            uploaded_bytes: 0,
            downloaded_bytes: 2_500,
            peers: 2,
            waiting: Some("no progress for 20s".into()),
        }],
        last_check_seconds: None,
        last_check_bytes: 0,
        packs_woken: 0,
        pack_restarts: [("done".to_string(), 2), ("early".to_string(), 1)].into(),
    };
    let statuses = vec![
        serde_json::to_vec(&status).expect("status serializes"),
        serde_json::to_vec_pretty(&shoal_status::Status::default()).expect("serializes"),
    ];
    statuses
}

/// Private key files and public key strings.
fn keys(key: &PrivateKey, public: &PublicKey) -> Vec<Vec<u8>> {
    let keys = vec![
        key.to_file_text().into_bytes(),
        public.to_string_key().into_bytes(),
        format!("  {}\n", public.to_string_key()).into_bytes(),
    ];
    keys
}

impl Fixture {
    pub fn new() -> Self {
        let key = PrivateKey::from_file_text(&format!("shoal-ed25519-private-key {TEST_KEY_SEED}"))
            .expect("test key");
        let public = key.public();
        let Documents {
            manifests,
            bases,
            deltas,
            heads,
            envelopes,
        } = documents(&key);
        Fixture {
            manifests,
            bases,
            deltas,
            heads,
            envelopes,
            torrents: torrents(),
            announces: announces(&key),
            queries: queries(),
            configs: configs(),
            sites: sites(),
            statuses: statuses(),
            keys: keys(&key, &public),
            key,
            public,
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}
