//! Prints what building and verifying a format 3 root costs after a 0.1 %
//! change of a 1M-entry manifest, next to serializing and hashing the
//! whole body (what format 2 did every generation). Not a test: timings
//! vary by machine. Run with
//! `cargo run --release -p shoal-manifest --example chunk_timing [ENTRIES]`.

use shoal_manifest::signed::PrivateKey;
use shoal_manifest::{chunk_body, Entry, EntryKind, Header, Manifest, PackRef, Sha256Hash, FORMAT};
use std::time::Instant;

fn entry(path: String, n: u64) -> Entry {
    Entry {
        path,
        kind: EntryKind::File {
            size: 1000 + n,
            sha256: Sha256Hash::of(&n.to_le_bytes()),
            pack: Some(n % 50),
        },
        mode: 0o644,
        mtime_ns: 1_700_000_000_000_000_000 + n as i64,
    }
}

fn header(generation: u64) -> Header {
    Header {
        format: FORMAT,
        generation,
        profile: "debian".into(),
        created: 100,
        expires: 1000,
        prev_sha256: None,
        packs: (0..50)
            .map(|id| PackRef {
                id,
                info_hash: "00".repeat(20),
                files: 1,
                bytes: 1,
            })
            .collect(),
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut base: Vec<Entry> = (0..n)
        .map(|i| {
            entry(
                format!(
                    "pool/main/{:03}/pkg{:04}/pkg{i:07}_1.0_amd64.deb",
                    i % 400,
                    i % 9973
                ),
                i,
            )
        })
        .collect();
    base.sort_by(|a, b| a.path.cmp(&b.path));
    let key = PrivateKey::generate();
    let pk = key.public();

    let t = Instant::now();
    let whole = chunk_body(&base);
    let whole_hash = Sha256Hash::of(&whole);
    let whole_ms = ms(t);
    let t = Instant::now();
    let env = key.seal("manifest", &whole);
    let whole_sign_ms = ms(t);
    let sig = shoal_manifest::signed::signature_of(&env).unwrap();
    let t = Instant::now();
    pk.verify("manifest", &whole, &sig).expect("verifies");
    let whole_verify_ms = ms(t);
    drop(env);
    println!(
        "entries {n}: whole body {} MB; serialize+SHA-256 {whole_ms:.0} ms ({whole_hash:?}), seal (sign+compress) {whole_sign_ms:.0} ms, verify {whole_verify_ms:.0} ms",
        whole.len() >> 20
    );

    let t = Instant::now();
    let prev = Manifest::new(header(1), base.clone());
    let full_ms = ms(t);
    let root = prev.body();
    println!(
        "format 3 from scratch: {} chunks, root {} KB, cut+serialize+hash all chunks {full_ms:.0} ms",
        prev.chunks().len(),
        root.len() >> 10
    );

    let t = Instant::now();
    let wire: usize = (0..prev.chunks().len())
        .map(|i| shoal_manifest::compress_chunk(&prev.chunk_body(i)).len())
        .sum();
    let whole_z = zstd::bulk::compress(&whole, 3).expect("zstd").len();
    println!(
        "chunks compressed one by one (zstd 3): {} MB in {:.0} ms; the whole body at once: {} MB",
        wire >> 20,
        ms(t),
        whole_z >> 20
    );

    for (name, step) in [
        ("spread (every 1000th entry)", 1000usize),
        ("clustered (1000 consecutive entries)", 0),
    ] {
        let mut next = base.clone();
        let k = (n / 1000) as usize;
        if step > 0 {
            for i in 0..k {
                next[i * step].mtime_ns += 1;
            }
        } else {
            let at = next.len() / 3;
            for e in &mut next[at..at + k] {
                e.mtime_ns += 1;
            }
        }
        // Origin: diff against the previous entries, re-cut what changed,
        // serialize and hash the root, sign it.
        let copy = next.clone();
        let t = Instant::now();
        let m = Manifest::following(header(2), copy, &prev).expect("valid");
        let build_ms = ms(t);
        let t = Instant::now();
        let body = m.body();
        let hash = Sha256Hash::of(&body);
        let env = key.seal("manifest", &body);
        let root_ms = ms(t);
        // Mirror: rebuild from the delta's changes, hash and verify the root.
        let d = m.delta_from(&prev, String::new());
        let t = Instant::now();
        let got = Manifest::with_changes(header(2), &prev, d.upserts, d.removals).expect("valid");
        let recut_ms = ms(t);
        let t = Instant::now();
        let body2 = got.body();
        assert_eq!(Sha256Hash::of(&body2), hash);
        let hash_ms = ms(t);
        let t = Instant::now();
        pk.verify(
            "manifest",
            &body2,
            &shoal_manifest::signed::signature_of(&env).unwrap(),
        )
        .expect("verifies");
        let verify_ms = ms(t);
        let mirror_ms = recut_ms + hash_ms + verify_ms;
        println!(
            "0.1 % change, {name}: {} of {} chunks recomputed; origin diff+re-cut {build_ms:.1} ms, root serialize+hash+seal {root_ms:.1} ms; mirror re-cut {recut_ms:.1} + root serialize+hash {hash_ms:.1} + verify {verify_ms:.1} = {mirror_ms:.1} ms",
            m.recomputed().len(),
            m.chunks().len()
        );
    }
}
