//! Bad input: every case gives a clear error that says what is wrong, the
//! mirror's live tree stays as it was, and nothing is written outside the
//! repository and state directories.

use shoal_e2e::agents::*;
use shoal_e2e::fake::FakeUpstream;
use shoal_manifest::signed::PrivateKey;
use shoal_manifest::{
    chunk_body, compress_chunk, decompress_chunk, Entry, EntryKind, Head, Manifest, Root,
    Sha256Hash, FORMAT,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An origin, a fake upstream relaying it, and a mirror that follows only
/// the fake upstream and holds generation 1.
struct Bed {
    _t: tempfile::TempDir,
    dir: PathBuf,
    src: PathBuf,
    origin: Agent,
    key: PrivateKey,
    fake: FakeUpstream,
    mirror: Agent,
    snapshot: std::collections::BTreeMap<String, Vec<u8>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Bed {
    fn new() -> Bed {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("pool")).unwrap();
        std::fs::write(src.join("pool/a.deb"), vec![1u8; 40_000]).unwrap();
        std::fs::write(src.join("pool/b.deb"), vec![2u8; 70_000]).unwrap();
        std::fs::write(src.join("index"), b"index v1\n").unwrap();
        let (keyfile, pubkey) = keygen(&dir);
        let key = PrivateKey::from_file_text(&std::fs::read_to_string(&keyfile).unwrap()).unwrap();
        let origin = start_origin(&dir, "origin", &src, &keyfile, "generic", &[]);
        assert_eq!(publish(&origin.state), 1);
        let fake = FakeUpstream::start();
        let bed_fake_url = fake.url();
        let mut bed = Bed {
            _t: t,
            dir: dir.clone(),
            src,
            origin,
            key,
            fake,
            mirror: start_mirror(
                &dir,
                "m1",
                &pubkey,
                &[bed_fake_url],
                &["--delete-grace", "0s"],
            ),
            snapshot: Default::default(),
        };
        bed.relay();
        bed.mirror.wait_generation(1);
        bed.snapshot = tree(&bed.mirror.repo, &["project/trace"]);
        assert!(!bed.snapshot.is_empty());
        bed
    }

    /// Makes the fake upstream serve exactly what the origin serves.
    fn relay(&self) {
        self.fake.clear();
        let docs = self.origin.state.join("docs");
        self.fake
            .put("/v1/head", std::fs::read(docs.join("head.shoal")).unwrap());
        for sub in ["manifests", "deltas"] {
            for e in std::fs::read_dir(docs.join(sub)).into_iter().flatten() {
                let e = e.unwrap();
                let n = e
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".shoal")
                    .to_string();
                let route = if sub == "manifests" {
                    "manifest"
                } else {
                    "delta"
                };
                self.fake.put(
                    &format!("/v1/{route}/{n}"),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
        for e in std::fs::read_dir(docs.join("chunks")).into_iter().flatten() {
            let e = e.unwrap();
            let n = e
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".zst")
                .to_string();
            self.fake
                .put(&format!("/v1/chunk/{n}"), std::fs::read(e.path()).unwrap());
        }
        for e in std::fs::read_dir(self.origin.state.join("torrents")).unwrap() {
            let e = e.unwrap();
            let n = e
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".torrent")
                .to_string();
            self.fake.put(
                &format!("/v1/torrent/{n}"),
                std::fs::read(e.path()).unwrap(),
            );
        }
        // The origin's peer entry, signed with the origin key as the origin
        // itself signs it (a relay cannot make one up).
        let st = self.origin.status().unwrap();
        let info = shoal_agent::peers::PeerInfo {
            name: st.name,
            role: st.role,
            url: self.origin.url(),
            peer_addr: st.peer_addr.parse().unwrap(),
            generation: st.generation_applied,
        };
        let me = serde_json::json!([shoal_agent::peers::SignedPeer::sign(info, &self.key, now())]);
        self.fake.put("/v1/announce", me.to_string().into_bytes());
    }

    /// The origin's manifest of `generation`: its root and stored chunks.
    fn manifest(&self, generation: u64) -> Manifest {
        let docs = self.origin.state.join("docs");
        let env = std::fs::read(docs.join(format!("manifests/{generation}.shoal"))).unwrap();
        let root = Root::from_body(&self.key.public().open("manifest", &env).unwrap()).unwrap();
        let bodies: Vec<Vec<u8>> = root
            .chunks
            .iter()
            .map(|c| {
                let z = std::fs::read(docs.join(format!("chunks/{}.zst", c.sha256))).unwrap();
                decompress_chunk(&z).unwrap()
            })
            .collect();
        Manifest::from_root(root, bodies).unwrap()
    }

    /// Serves `m` (signed by `key`, its chunks cut afresh) as the newest
    /// generation.
    fn offer(&self, m: &Manifest, key: &PrivateKey, expires: i64) {
        let m = Manifest::new(m.header.clone(), m.to_entries());
        for (i, c) in m.chunks().iter().enumerate() {
            self.fake.put(
                &format!("/v1/chunk/{}", c.sha256),
                compress_chunk(&m.chunk_body(i)),
            );
        }
        let root = Root {
            header: m.header.clone(),
            chunks: m.chunks().to_vec(),
        };
        self.offer_root(&root, key, expires);
    }

    /// Serves `root` (signed by `key`) as the newest generation; its
    /// chunks are served as they are put.
    fn offer_root(&self, root: &Root, key: &PrivateKey, expires: i64) {
        let m = root;
        let body = m.body();
        let head = Head {
            format: FORMAT,
            generation: m.header.generation,
            manifest_sha256: Sha256Hash::of(&body),
            created: now(),
            expires,
        };
        self.fake.put("/v1/head", key.seal("head", &head.body()));
        self.fake.put(
            &format!("/v1/manifest/{}", m.header.generation),
            key.seal("manifest", &body),
        );
    }

    /// Waits for the mirror to report an error containing every `needle`,
    /// then checks that it still holds generation `generation` untouched.
    fn expect_refusal(&self, needles: &[&str], generation: u64) -> String {
        let mut last = String::new();
        wait_for(
            &format!("/status last_error containing {needles:?}"),
            Duration::from_secs(60),
            || {
                last = self
                    .mirror
                    .status()
                    .and_then(|s| s.last_error)
                    .unwrap_or_default();
                needles.iter().all(|n| last.contains(n))
            },
        );
        let st = self.mirror.status().unwrap();
        assert_eq!(
            st.generation_applied, generation,
            "the mirror moved on: {last}"
        );
        assert_eq!(
            tree(&self.mirror.repo, &["project/trace"]),
            self.snapshot,
            "live tree changed"
        );
        // Nothing outside repo/state: the temp dir holds only what the bed made.
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in &names {
            assert!(
                [
                    "src",
                    "origin.key",
                    "origin-state",
                    "origin.log",
                    "m1-repo",
                    "m1-state",
                    "m1.log"
                ]
                .contains(&n.as_str()),
                "unexpected {n} written next to the repository"
            );
        }
        assert!(!Path::new("/tmp/shoal-evil").exists());
        last
    }
}

fn file_entry(path: &str, data: &[u8], pack: Option<u64>) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            size: data.len() as u64,
            sha256: Sha256Hash::of(data),
            pack,
        },
        mode: 0o644,
        mtime_ns: 0,
    }
}

/// `m` with its entries changed by `f` (cut into chunks afresh).
fn edited(m: &Manifest, f: impl FnOnce(&mut Vec<Entry>)) -> Manifest {
    let mut v = m.to_entries();
    f(&mut v);
    Manifest::new(m.header.clone(), v)
}

#[test]
fn forged_signature_is_refused() {
    let bed = Bed::new();
    let mut m = bed.manifest(1);
    m.header.generation = 2;
    let m = edited(&m, |v| v.retain(|e| e.path != "index"));
    let forger = PrivateKey::generate();
    bed.offer(&m, &forger, now() + 3600);
    let e = bed.expect_refusal(
        &[
            "signature check failed",
            "not signed by the configured origin key",
        ],
        1,
    );
    assert!(
        e.contains(&bed.fake.url()),
        "the error names the upstream: {e}"
    );
}

#[test]
fn expired_manifest_is_refused() {
    let bed = Bed::new();
    let mut m = bed.manifest(1);
    m.header.generation = 2;
    m.header.expires = now() - 10;
    bed.offer(&m, &bed.key, now() - 10);
    bed.expect_refusal(&["expired", "freeze protection"], 1);
}

#[test]
fn truncated_and_garbage_manifests_are_refused() {
    let bed = Bed::new();
    let mut m = bed.manifest(1);
    m.header.generation = 2;
    let m = edited(&m, |v| v.retain(|e| e.path != "index"));
    bed.offer(&m, &bed.key, now() + 3600);
    let good = bed.key.seal("manifest", &m.body());
    bed.fake
        .put("/v1/manifest/2", good[..good.len() / 2].to_vec());
    bed.expect_refusal(&["no upstream served a valid manifest for generation 2"], 1);
    bed.fake
        .put("/v1/manifest/2", b"<html>proxy error</html>".to_vec());
    bed.expect_refusal(&["not a Shoal signed document"], 1);
    bed.fake.put("/v1/head", b"SHOAL1 head".to_vec());
    bed.expect_refusal(&["/v1/head", "not a Shoal signed document"], 1);
}

#[test]
fn mixed_generations_are_refused() {
    let bed = Bed::new();
    // The head names one manifest, the upstream serves another validly
    // signed one for the same generation.
    let mut m = bed.manifest(1);
    m.header.generation = 2;
    bed.offer(&m, &bed.key, now() + 3600);
    let other = edited(&m, |v| v.retain(|e| e.path != "index"));
    bed.fake
        .put("/v1/manifest/2", bed.key.seal("manifest", &other.body()));
    bed.expect_refusal(&["hash mismatch", "mixed from different generations"], 1);
}

/// A root whose chunks do not fit: every case signed with the origin's
/// own key (a broken or compromised origin, or a bug), so only the chunk
/// checks stand between it and the live tree.
#[test]
fn forged_chunks_are_refused() {
    let bed = Bed::new();
    let base = bed.manifest(1);
    let mut entries = base.to_entries();
    entries.push(file_entry("pool/c.deb", b"", None));
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    assert!(entries.len() >= 3, "{entries:?}");
    assert!(!shoal_manifest::cuts_after(&entries[0].path));
    type Case = (Vec<Vec<Entry>>, &'static [&'static str]);
    let swapped = {
        let mut e = entries.clone();
        e.swap(0, 1);
        e
    };
    let cases: Vec<Case> = vec![
        // a chunk that overlaps the next one
        (
            vec![
                vec![entries[0].clone(), entries[2].clone()],
                vec![entries[1].clone()],
            ],
            &["chunk 0 of generation 2", "overlaps the next chunk"],
        ),
        // entries out of order inside a chunk
        (vec![swapped], &["not sorted"]),
        // cut where the format does not cut ('index' is no cut)
        (
            vec![vec![entries[0].clone()], entries[1..].to_vec()],
            &["not cut where the format cuts"],
        ),
    ];
    let mut g = 2;
    let put = |chunks: &[Vec<Entry>]| -> Vec<shoal_manifest::ChunkRef> {
        chunks
            .iter()
            .map(|c| {
                let body = chunk_body(c);
                let sha = Sha256Hash::of(&body);
                bed.fake
                    .put(&format!("/v1/chunk/{sha}"), compress_chunk(&body));
                shoal_manifest::ChunkRef {
                    first: c[0].path.as_str().into(),
                    count: c.len() as u64,
                    sha256: sha,
                }
            })
            .collect()
    };
    for (chunks, why) in cases {
        let mut header = base.header.clone();
        header.generation = g;
        let root = Root {
            header,
            chunks: put(&chunks),
        };
        bed.offer_root(&root, &bed.key, now() + 3600);
        let e = bed.expect_refusal(why, 1);
        assert!(e.contains("refused") || e.contains("bad path"), "{e}");
        g += 1;
    }
    // The root lists the wrong count, or the wrong first path.
    for (edit, why) in [
        (
            (|c: &mut shoal_manifest::ChunkRef| c.count += 1) as fn(&mut shoal_manifest::ChunkRef),
            "the root says",
        ),
        (|c| c.first = "pool/0".into(), "starts at"),
    ] {
        let mut header = base.header.clone();
        header.generation = g;
        let mut root = Root {
            header,
            chunks: put(&[entries.clone()]),
        };
        edit(&mut root.chunks[0]);
        bed.offer_root(&root, &bed.key, now() + 3600);
        bed.expect_refusal(&[why], 1);
        g += 1;
    }
    // A chunk whose bytes do not hash to its id: refused at the fetch (a
    // chunk no earlier case served, so the mirror does not hold it).
    let mut header = base.header.clone();
    header.generation = g;
    entries.push(file_entry("pool/d.deb", b"", None));
    let good = chunk_body(&entries);
    let sha = Sha256Hash::of(&good);
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    bed.fake
        .put(&format!("/v1/chunk/{sha}"), compress_chunk(&bad));
    let root = Root {
        header,
        chunks: vec![shoal_manifest::ChunkRef {
            first: entries[0].path.as_str().into(),
            count: entries.len() as u64,
            sha256: sha,
        }],
    };
    bed.offer_root(&root, &bed.key, now() + 3600);
    bed.expect_refusal(&["does not hash to its id"], 1);
    // A chunk served uncompressed (or as any other garbage).
    g += 1;
    entries.push(file_entry("pool/e.deb", b"", None));
    let body = chunk_body(&entries);
    let sha = Sha256Hash::of(&body);
    bed.fake.put(&format!("/v1/chunk/{sha}"), body);
    let mut header = base.header.clone();
    header.generation = g;
    let root = Root {
        header,
        chunks: vec![shoal_manifest::ChunkRef {
            first: entries[0].path.as_str().into(),
            count: entries.len() as u64,
            sha256: sha,
        }],
    };
    bed.offer_root(&root, &bed.key, now() + 3600);
    bed.expect_refusal(&["not a zstd stream"], 1);
}

/// Not bad input, but this bed has a mirror fed by a fake upstream: a
/// mirror that fetches a manifest in full (no delta on offer anywhere)
/// takes the chunks it holds from its store and fetches only the others
/// (counted by its "manifest chunks gathered" log line and by the
/// upstream's requests), and keeps them to relay.
#[test]
fn a_full_fetch_gets_only_the_chunks_the_mirror_lacks() {
    let bed = Bed::new();
    let chunk_ids = |g: u64| -> std::collections::BTreeSet<String> {
        bed.manifest(g)
            .chunks()
            .iter()
            .map(|c| c.sha256.to_hex())
            .collect()
    };
    std::fs::create_dir_all(bed.src.join("many")).unwrap();
    for i in 0..400 {
        std::fs::write(bed.src.join(format!("many/f{i:03}")), format!("{i}\n")).unwrap();
    }
    let mut generation = 1;
    for round in 0..2 {
        if round == 1 {
            std::fs::write(bed.src.join("many/f200"), b"changed\n").unwrap();
        }
        generation += 1;
        assert_eq!(publish(&bed.origin.state), generation);
        // No delta anywhere: the origin's is gone from its disk too.
        std::fs::remove_file(
            bed.origin
                .state
                .join(format!("docs/deltas/{}.shoal", generation - 1)),
        )
        .unwrap();
        bed.relay();
        bed.fake.take_hits();
        bed.mirror.wait_generation(generation);
        let now = chunk_ids(generation);
        let lacking = now.difference(&chunk_ids(generation - 1)).count();
        assert!(now.len() > 3, "several chunks: {now:?}");
        let log = std::fs::read_to_string(&bed.mirror.proc.log).unwrap();
        let line = log
            .lines()
            .rfind(|l| {
                l.contains("manifest chunks gathered")
                    && l.contains(&format!("generation={generation} "))
            })
            .unwrap_or_else(|| panic!("no full fetch of generation {generation}:\n{log}"));
        assert!(
            line.contains(&format!("chunks={} ", now.len()))
                && line.contains(&format!("held={}", now.len() - lacking)),
            "round {round}: {} chunks, {lacking} not held before: {line}",
            now.len()
        );
        // What the fake upstream served is at most what was lacking.
        let fetched = bed
            .fake
            .take_hits()
            .into_iter()
            .filter(|h| h.starts_with("/v1/chunk/"))
            .count();
        assert!(
            fetched <= lacking,
            "{fetched} chunk requests, {lacking} lacking"
        );
        if round == 1 {
            assert!(lacking <= 2, "one changed file changes one or two chunks");
        }
        for id in &now {
            assert!(
                bed.mirror
                    .state
                    .join(format!("docs/chunks/{id}.zst"))
                    .exists(),
                "the mirror keeps chunk {id} to relay it"
            );
        }
    }
}

#[test]
fn path_traversal_and_escaping_symlinks_are_refused() {
    let bed = Bed::new();
    let base = bed.manifest(1);
    let pack = base.header.packs[0].id;
    let cases: Vec<(Entry, &str)> = vec![
        (
            file_entry("../../../tmp/shoal-evil", b"x", Some(pack)),
            "'..' component",
        ),
        (
            file_entry("/tmp/shoal-evil", b"x", Some(pack)),
            "absolute path",
        ),
        (file_entry("pool/a\0b", b"x", Some(pack)), "NUL"),
        (
            Entry {
                path: "pool/link".into(),
                kind: EntryKind::Symlink {
                    target: "../../../tmp".into(),
                },
                mode: 0o777,
                mtime_ns: 0,
            },
            "outside the tree",
        ),
    ];
    for (g, (entry, why)) in cases.into_iter().enumerate() {
        let mut m = edited(&base, |v| {
            v.push(entry);
            v.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        });
        m.header.generation = 2 + g as u64;
        bed.offer(&m, &bed.key, now() + 3600);
        bed.expect_refusal(&["bad path", why], 1);
    }
}

#[test]
fn rollback_to_an_older_generation_is_refused() {
    let bed = Bed::new();
    let old_head = std::fs::read(bed.origin.state.join("docs/head.shoal")).unwrap();
    std::fs::write(bed.src.join("index"), b"index v2\n").unwrap();
    assert_eq!(publish(&bed.origin.state), 2);
    bed.relay();
    bed.mirror.wait_generation(2);
    let snapshot = tree(&bed.mirror.repo, &["project/trace"]);
    // The origin goes away and the only upstream left replays the validly
    // signed generation 1.
    let mut origin = bed.origin;
    origin.proc.stop();
    bed.fake.put("/v1/head", old_head);
    let mut last = String::new();
    wait_for("a rollback refusal", Duration::from_secs(60), || {
        last = bed
            .mirror
            .status()
            .and_then(|s| s.last_error)
            .unwrap_or_default();
        last.contains("refusing to roll back")
    });
    assert!(
        last.contains("older generation (newest 1)") && last.contains("(2)"),
        "{last}"
    );
    assert_eq!(bed.mirror.status().unwrap().generation_applied, 2);
    assert_eq!(tree(&bed.mirror.repo, &["project/trace"]), snapshot);
    drop(origin);
}

/// Runs shoal-agent expecting it to fail; returns stderr.
fn fails(args: &[&str], cwd: &Path) -> String {
    let out = Command::new(shoal_e2e::bin("shoal-agent"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "shoal-agent {args:?} should fail; stderr: {err}"
    );
    err
}

#[test]
fn ports_in_use_are_named() {
    let t = tempfile::tempdir().unwrap();
    let (_, pk) = keygen(t.path());
    let ip = fresh_ip();
    let busy = std::net::TcpListener::bind((ip, 0)).unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let e = fails(
        &[
            "mirror",
            "--repo",
            "r",
            "--state",
            "s",
            "--origin-key",
            &pk,
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            &addr,
        ],
        t.path(),
    );
    assert!(
        e.contains(&format!("cannot listen for HTTP on {addr}")) && e.contains("pick a free port"),
        "{e}"
    );
    let free = std::net::SocketAddr::new(ip, free_port(ip)).to_string();
    let e = fails(
        &[
            "mirror",
            "--repo",
            "r",
            "--state",
            "s2",
            "--origin-key",
            &pk,
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            &free,
            "--peer-listen",
            &addr,
        ],
        t.path(),
    );
    assert!(
        e.contains(&format!("cannot listen for BitTorrent peers on {addr}")),
        "{e}"
    );
}

#[test]
fn missing_or_unwritable_repositories_are_explained() {
    let t = tempfile::tempdir().unwrap();
    let (key, pk) = keygen(t.path());
    let (http, _) = addrs();
    let h = http.to_string();
    let k = key.to_string_lossy().into_owned();
    let e = fails(
        &[
            "origin", "--repo", "nope", "--state", "s", "--key", &k, "--listen", &h,
        ],
        t.path(),
    );
    assert!(
        e.contains("repository nope cannot be read") && e.contains("create it or fix --repo"),
        "{e}"
    );
    // A repository below a regular file can never be created.
    std::fs::write(t.path().join("file"), b"").unwrap();
    let e = fails(
        &[
            "mirror",
            "--repo",
            "file/repo",
            "--state",
            "s",
            "--origin-key",
            &pk,
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            &h,
        ],
        t.path(),
    );
    assert!(
        e.contains("repository file/repo: Not a directory") && e.contains("fix the path"),
        "{e}"
    );
    // A read-only file system (root ignores permission bits, so mount one).
    let ro = t.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a read-only tmpfs needs root");
    let e = fails(
        &[
            "mirror",
            "--repo",
            "ro",
            "--state",
            "s",
            "--origin-key",
            &pk,
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            &h,
        ],
        t.path(),
    );
    let _ = Command::new("umount").arg(&ro).status();
    assert!(
        e.contains("repository ro is not writable") && e.contains("fix its permissions"),
        "{e}"
    );
}

#[test]
fn bad_config_files_name_file_line_and_key() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("agent.yaml");
    std::fs::write(
        &cfg,
        "role: mirror\nrepo: /srv/r\nstate: /var/lib/s\nlisten: 127.0.0.1:1\ncolour: blue\n",
    )
    .unwrap();
    let e = fails(&["--config", cfg.to_str().unwrap(), "run"], t.path());
    assert!(e.contains("agent.yaml:5:1: unknown field `colour`"), "{e}");
    std::fs::write(
        &cfg,
        "role: origin\nrepo: /srv/r\nstate: /srv/r/state\nlisten: 127.0.0.1:1\norigin: {key: /k}\n",
    )
    .unwrap();
    let e = fails(&["--config", cfg.to_str().unwrap(), "run"], t.path());
    assert!(
        e.contains("state") && e.contains("must not contain each other"),
        "{e}"
    );
    std::fs::write(
        &cfg,
        "role: mirror\nrepo: /srv/r\nstate: /var/lib/s\nlisten: 127.0.0.1:99999\n",
    )
    .unwrap();
    let e = fails(&["--config", cfg.to_str().unwrap(), "run"], t.path());
    assert!(
        e.contains("agent.yaml:4:9") || e.contains("agent.yaml:4:"),
        "{e}"
    );
}

#[test]
fn two_agents_never_share_a_state_directory() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("src")).unwrap();
    std::fs::write(t.path().join("src/f"), b"x").unwrap();
    let (key, _) = keygen(t.path());
    let first = start_origin(t.path(), "o1", &t.path().join("src"), &key, "generic", &[]);
    let (h, p) = addrs();
    let e = fails(
        &[
            "origin",
            "--repo",
            "src",
            "--state",
            first.state.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--listen",
            &h.to_string(),
            "--peer-listen",
            &p.to_string(),
        ],
        t.path(),
    );
    assert!(e.contains("is in use by another shoal-agent"), "{e}");
}

#[test]
fn non_utf8_names_stop_a_publish_and_inner_symlinks_are_mirrored() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("dists/bookworm")).unwrap();
    std::fs::write(src.join("dists/bookworm/Release"), b"r").unwrap();
    std::os::unix::fs::symlink("bookworm", src.join("dists/stable")).unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", src.join("dists/escape")).unwrap();
    let (key, pubkey) = keygen(t.path());
    let origin = start_origin(t.path(), "origin", &src, &key, "debian", &[]);
    assert_eq!(publish(&origin.state), 1);
    let m = start_mirror(t.path(), "m1", &pubkey, &[origin.url()], &[]);
    m.wait_generation(1);
    // The symlink inside the tree is mirrored as a symlink; the escaping one is not.
    assert_eq!(
        std::fs::read_link(m.repo.join("dists/stable")).unwrap(),
        Path::new("bookworm")
    );
    assert!(std::fs::symlink_metadata(m.repo.join("dists/escape")).is_err());
    // A name that is not UTF-8 stops the next publish with a clear error.
    let bad = std::ffi::OsStr::from_bytes(b"pool-\xff.deb");
    std::fs::write(src.join(bad), b"x").unwrap();
    let e = fails(
        &["publish", "--state", origin.state.to_str().unwrap()],
        t.path(),
    );
    assert!(
        e.contains("not valid UTF-8") && e.contains("origin.exclude"),
        "{e}"
    );
    assert_eq!(origin.status().unwrap().generation_applied, 1);
    assert!(origin
        .status()
        .unwrap()
        .last_error
        .unwrap_or_default()
        .contains("not valid UTF-8"));
}
