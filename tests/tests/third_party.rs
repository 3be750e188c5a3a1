//! Interoperability and hostile peers, with a third-party BitTorrent
//! client (aria2c). aria2c runs with DHT, LPD (local peer discovery) and
//! peer exchange off, and learns peers only from a Shoal agent's tracker.

use sha2::{Digest, Sha256};
use shoal_e2e::agents::*;
use shoal_e2e::fake::FakeUpstream;
use shoal_manifest::signed::PrivateKey;
use shoal_manifest::{Entry, EntryKind, Head, Header, Manifest, PackRef, Sha256Hash, FORMAT};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn aria2c(dir: &Path, name: &str, args: &[String]) -> Proc {
    let mut cmd = Command::new("aria2c");
    cmd.args([
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--disable-ipv6=true",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--check-certificate=false",
        "--file-allocation=none",
    ])
    .args(args);
    Proc::spawn(name, cmd, &dir.join(format!("{name}.log")))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// aria2c downloads a Shoal pack from a Shoal origin: our info dictionary,
/// single-file stream (zeros where it pads) and tracker work with another
/// client, and every content it received hashes to its name.
#[test]
fn aria2c_downloads_a_pack_from_an_origin() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    for i in 0..12u32 {
        let data: Vec<u8> = (0..(5_000 + i as usize * 37_111))
            .map(|j| (j as u32 * 7 + i) as u8)
            .collect();
        std::fs::write(src.join(format!("pool/f{i}")), data).unwrap();
    }
    let (key, _) = keygen(dir);
    let origin = start_origin(dir, "origin", &src, &key, "generic", &[]);
    publish(&origin.state);
    let torrents: Vec<_> = std::fs::read_dir(origin.state.join("torrents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // A publish of 2.5 MB is cut into packs of at least 1 MiB; take one.
    assert!(!torrents.is_empty(), "the publish made no pack");
    let torrent = &torrents[0];
    let out = dir.join("aria2-out");
    let mut a = aria2c(
        dir,
        "aria2c",
        &[
            format!("--bt-tracker={}/announce", origin.url()),
            format!("--dir={}", out.display()),
            format!("--listen-port={}", free_port("127.0.0.1".parse().unwrap())),
            "--seed-time=0".into(),
            "--bt-stop-timeout=120".into(),
            torrent.display().to_string(),
        ],
    );
    let code = a.wait_exit(Duration::from_secs(180));
    assert_eq!(code, Some(0), "aria2c failed:\n{}", a.log_tail(20));
    // aria2c wrote the pack's stream as one file; every content in it,
    // where the pack's layout puts it, hashes to its own name.
    let parsed = shoal_pack::parse_torrent(&std::fs::read(torrent).unwrap(), None).unwrap();
    assert!(!parsed.files.is_empty());
    let layout = parsed.layout();
    let p = out.join(&parsed.name);
    let stream = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(stream.len() as u64, layout.len());
    for (i, (sha, size)) in parsed.files.iter().enumerate() {
        let start = layout.start(i) as usize;
        let data = &stream[start..start + *size as usize];
        assert_eq!(<[u8; 32]>::from(Sha256::digest(data)), *sha);
    }
    // The origin counted those bytes as sent to a non-Shoal client.
    wait_for(
        "the origin to count bytes sent to aria2c",
        Duration::from_secs(10),
        || {
            origin
                .status()
                .map(|s| s.bytes_up.get("other").copied().unwrap_or(0) > 0)
                .unwrap_or(false)
        },
    );
}

/// A pack whose data matches its BitTorrent piece hashes but not the
/// SHA-256 in the signed manifest (a broken or compromised publisher,
/// here served by aria2c): the mirror refuses the generation and its live
/// tree stays as it was.
#[test]
fn pack_data_that_mismatches_the_manifest_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (keyfile, pubkey) = keygen(dir);
    let key = PrivateKey::from_file_text(&std::fs::read_to_string(&keyfile).unwrap()).unwrap();
    let good = vec![7u8; 100_000];
    let evil = vec![66u8; 100_000];
    let good_sha: [u8; 32] = Sha256::digest(&good).into();
    // Pieces of the evil bytes, filed under the good content's name.
    let h = shoal_pack::hash_stream(&mut &evil[..], None).unwrap();
    let content = shoal_pack::Content::new(good_sha, evil.len() as u64, h.pieces, h.last_unpadded);
    // A content of a piece or more: aligned, so no bytes are read here.
    let pack = shoal_pack::build("shoal-evil", &[content], &mut |_| unreachable!()).unwrap();
    let ih = hex::encode(pack.info_hash);
    let torrent_path = dir.join("evil.torrent");
    std::fs::write(&torrent_path, &pack.torrent).unwrap();
    // aria2c seeds the evil bytes: the pack's stream is that one content.
    let seed_dir = dir.join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::write(seed_dir.join("shoal-evil"), &evil).unwrap();
    let port = free_port("127.0.0.1".parse().unwrap());
    let _seeder = aria2c(
        dir,
        "aria2c-seeder",
        &[
            format!("--dir={}", seed_dir.display()),
            format!("--listen-port={port}"),
            "--check-integrity=true".into(),
            "--seed-ratio=0.0".into(),
            "--seed-time=10".into(),
            torrent_path.display().to_string(),
        ],
    );
    // A fake upstream publishes the signed generation and names the seeder.
    let fake = FakeUpstream::start();
    let manifest = Manifest::new(
        Header {
            format: FORMAT,
            generation: 1,
            profile: "generic".into(),
            created: now(),
            expires: now() + 3600,
            prev_sha256: None,
            packs: vec![PackRef {
                id: 1,
                info_hash: ih.clone(),
                files: 1,
                bytes: good.len() as u64,
            }],
        },
        vec![Entry {
            path: "pool/x.deb".into(),
            kind: EntryKind::File {
                size: good.len() as u64,
                sha256: Sha256Hash(good_sha),
                pack: Some(1),
            },
            mode: 0o644,
            mtime_ns: 0,
        }],
    );
    let body = manifest.body();
    for (i, c) in manifest.chunks().iter().enumerate() {
        fake.put(
            &format!("/v1/chunk/{}", c.sha256),
            shoal_manifest::compress_chunk(&manifest.chunk_body(i)),
        );
    }
    let head = Head {
        format: FORMAT,
        generation: 1,
        manifest_sha256: Sha256Hash::of(&body),
        created: now(),
        expires: now() + 3600,
    };
    fake.put("/v1/head", key.seal("head", &head.body()));
    fake.put("/v1/manifest/1", key.seal("manifest", &body));
    fake.put(&format!("/v1/torrent/{ih}"), pack.torrent.clone());
    let peer = serde_json::json!([signed_peer(
        "aria2",
        "origin",
        &fake.url(),
        &format!("127.0.0.1:{port}"),
        &key
    )]);
    fake.put("/v1/announce", peer.to_string().into_bytes());
    // Its BitTorrent tracker hands the seeder out: mirrors learn an
    // origin's peer address only from the origin's own tracker.
    let mut tracker = b"d8:intervali1e5:peers6:".to_vec();
    tracker.extend_from_slice(&[127, 0, 0, 1]);
    tracker.extend_from_slice(&port.to_be_bytes());
    tracker.push(b'e');
    fake.put("/announce", tracker);
    let mirror = start_mirror(dir, "m1", &pubkey, &[fake.url()], &[]);
    let mut last = String::new();
    wait_for(
        "the mirror to refuse the pack",
        Duration::from_secs(120),
        || {
            last = mirror
                .status()
                .and_then(|s| s.last_error)
                .unwrap_or_default();
            last.contains("fails SHA-256")
        },
    );
    assert!(
        last.contains("refusing generation 1") && last.contains("live tree as it was"),
        "{last}"
    );
    let st = mirror.status().unwrap();
    assert_eq!(st.generation_applied, 0);
    assert!(
        !mirror.repo.join("pool/x.deb").exists(),
        "the evil file reached the live tree"
    );
}

/// A peer-table entry as the agent `name` would announce it, signed with
/// `key` (the origin key for `role: origin`).
fn signed_peer(
    name: &str,
    role: &str,
    url: &str,
    peer_addr: &str,
    key: &PrivateKey,
) -> shoal_agent::peers::SignedPeer {
    let info = shoal_agent::peers::PeerInfo {
        name: name.into(),
        role: role.into(),
        url: url.into(),
        peer_addr: peer_addr.parse().unwrap(),
        generation: 1,
    };
    shoal_agent::peers::SignedPeer::sign(info, key, now())
}

/// aria2c offering corrupted data of a real pack next to a slow, honest
/// origin: BitTorrent piece checks throw the bad data away and the mirror
/// still converges to exactly the origin's tree.
#[test]
fn a_peer_sending_bad_pieces_does_not_corrupt_the_mirror() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4u8 {
        std::fs::write(src.join(format!("f{i}")), vec![i + 1; 600_000]).unwrap();
    }
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "generic",
        &["--upload-limit", "300KB"],
    );
    publish(&origin.state);
    // The publish is cut into several packs: the liar seeds them all.
    let torrents: Vec<_> = std::fs::read_dir(origin.state.join("torrents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!torrents.is_empty());
    let seed_dir = dir.join("bad");
    let fake = FakeUpstream::start();
    for torrent in &torrents {
        let parsed = shoal_pack::parse_torrent(&std::fs::read(torrent).unwrap(), None).unwrap();
        // A corrupted copy of the pack's stream.
        std::fs::create_dir_all(&seed_dir).unwrap();
        std::fs::write(
            seed_dir.join(&parsed.name),
            vec![0xEE; parsed.layout().len() as usize],
        )
        .unwrap();
        fake.put(
            &format!("/v1/torrent/{}", hex::encode(parsed.info_hash)),
            std::fs::read(torrent).unwrap(),
        );
    }
    let port = free_port("127.0.0.1".parse().unwrap());
    let mut args = vec![
        format!("--dir={}", seed_dir.display()),
        format!("--listen-port={port}"),
        "--bt-seed-unverified=true".into(),
        "--seed-ratio=0.0".into(),
        "--seed-time=5".into(),
    ];
    args.extend(torrents.iter().map(|t| t.display().to_string()));
    let _liar = aria2c(dir, "aria2c-liar", &args);
    let docs = origin.state.join("docs");
    fake.put("/v1/head", std::fs::read(docs.join("head.shoal")).unwrap());
    fake.put(
        "/v1/manifest/1",
        std::fs::read(docs.join("manifests/1.shoal")).unwrap(),
    );
    for e in std::fs::read_dir(docs.join("chunks")).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().replace(".zst", "");
        fake.put(&format!("/v1/chunk/{n}"), std::fs::read(e.path()).unwrap());
    }
    let st = origin.status().unwrap();
    let origin_key = PrivateKey::from_file_text(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let peers = serde_json::json!([
        signed_peer(
            "liar",
            "mirror",
            &fake.url(),
            &format!("127.0.0.1:{port}"),
            &PrivateKey::generate()
        ),
        signed_peer(
            &st.name,
            "origin",
            &origin.url(),
            &st.peer_addr,
            &origin_key
        ),
    ]);
    fake.put("/v1/announce", peers.to_string().into_bytes());
    let mirror = start_mirror(dir, "m1", &pubkey, &[fake.url()], &[]);
    mirror.wait_generation(1);
    assert_same_tree(&src, &mirror.repo, &["project/trace"]);
}
