//! Property tests of the layout planner: every set is on distinct hosts, every
//! brick is used exactly once, the output does not depend on the input order,
//! `chained` succeeds exactly when some valid layout exists, and it is the
//! plain rotation whenever that rotation is valid.

use proptest::prelude::*;
use shoal_gluster::{plan, Brick, Layout, LayoutError, VolumeType};
use std::collections::{HashMap, HashSet};

fn volume_type() -> impl Strategy<Value = VolumeType> {
    prop_oneof![
        (2u32..=4).prop_map(|replica| VolumeType::Replica {
            replica,
            arbiter: false
        }),
        (2u32..=3).prop_map(|replica| VolumeType::Replica {
            replica,
            arbiter: true
        }),
        (3u32..=6)
            .prop_flat_map(|disperse| (Just(disperse), 1..=(disperse - 1) / 2))
            .prop_map(|(disperse, redundancy)| VolumeType::Disperse {
                disperse,
                redundancy
            }),
    ]
}

/// Up to 8 hosts with 0..=6 bricks each; host names and paths chosen so that
/// natural and byte order differ (`h2` < `h10`).
fn brick_list() -> impl Strategy<Value = Vec<Brick>> {
    prop::collection::vec(0usize..=6, 1..=8)
        .prop_map(|counts| {
            counts
                .iter()
                .enumerate()
                .flat_map(|(h, &n)| {
                    (0..n).map(move |b| {
                        format!("h{}:/srv/b{}", [1, 2, 10, 3, 20, 4, 11, 5][h], b * 5)
                            .parse::<Brick>()
                            .unwrap()
                    })
                })
                .collect::<Vec<_>>()
        })
        .prop_filter("at least one brick", |v| !v.is_empty())
        .prop_shuffle()
}

fn feasible(t: VolumeType, bricks: &[Brick]) -> bool {
    let s = t.set_size();
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for b in bricks {
        *per_host.entry(b.host()).or_default() += 1;
    }
    let rem = bricks.len() % s;
    per_host.len() >= s && rem == 0 && per_host.values().all(|&c| c <= bricks.len() / s)
}

fn check_valid(t: VolumeType, input: &[Brick], p: &shoal_gluster::Plan) {
    assert_eq!(p.set_size, t.set_size());
    let mut seen = HashSet::new();
    for set in &p.sets {
        assert_eq!(set.bricks.len(), t.set_size());
        let hosts: HashSet<&str> = set.bricks.iter().map(|b| b.host()).collect();
        assert_eq!(
            hosts.len(),
            set.bricks.len(),
            "two bricks of one host in {set:?}"
        );
        for b in &set.bricks {
            assert!(seen.insert(b.clone()), "{b} used twice");
        }
    }
    let input: HashSet<Brick> = input.iter().cloned().collect();
    assert_eq!(seen, input, "every brick used exactly once");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn chained_is_valid_exactly_when_a_layout_exists(t in volume_type(), bricks in brick_list()) {
        match plan(t, Layout::Chained, &bricks) {
            Ok(p) => {
                check_valid(t, &bricks, &p);
                prop_assert!(feasible(t, &bricks));
            }
            Err(e) => {
                prop_assert!(!feasible(t, &bricks), "chained refused a feasible layout: {e}");
                prop_assert!(matches!(
                    e,
                    LayoutError::TooFewHosts { .. }
                        | LayoutError::BrickCountNotMultiple { .. }
                        | LayoutError::HostHasTooManyBricks { .. }
                ), "{e}");
            }
        }
    }

    #[test]
    fn simple_is_valid_or_refuses(t in volume_type(), bricks in brick_list()) {
        match plan(t, Layout::Simple, &bricks) {
            Ok(p) => check_valid(t, &bricks, &p),
            Err(LayoutError::SimpleLayoutConflict { .. }) => {
                // Only uneven hosts can collide, and chained then still works.
                prop_assert!(feasible(t, &bricks));
                prop_assert!(plan(t, Layout::Chained, &bricks).is_ok());
            }
            Err(_) => prop_assert!(!feasible(t, &bricks)),
        }
    }

    #[test]
    fn simple_never_collides_with_even_hosts(
        t in volume_type(),
        hosts in 1usize..=8,
        per_host in 1usize..=5,
    ) {
        let bricks: Vec<Brick> = (0..hosts)
            .flat_map(|h| (0..per_host).map(move |b| format!("n{h}:/b{b}").parse().unwrap()))
            .collect();
        if feasible(t, &bricks) {
            let p = plan(t, Layout::Simple, &bricks).unwrap();
            check_valid(t, &bricks, &p);
        }
    }

    #[test]
    fn output_is_deterministic_and_independent_of_input_order(
        t in volume_type(),
        bricks in brick_list(),
        layout in prop_oneof![Just(Layout::Simple), Just(Layout::Chained)],
        seed in any::<u64>(),
    ) {
        let mut other = bricks.clone();
        // A deterministic reshuffle driven by the seed.
        let mut x = seed | 1;
        for i in (1..other.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            other.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = plan(t, layout, &bricks);
        let b = plan(t, layout, &other);
        let c = plan(t, layout, &bricks);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
    }
    #[test]
    fn chained_is_the_plain_rotation_when_hosts_are_even(
        (t, hosts, cycles) in volume_type()
            .prop_flat_map(|t| (Just(t), t.set_size()..=7, 1usize..=3)),
    ) {
        // Equal brick counts with the number of sets a multiple of the host
        // count: set k takes the next brick of hosts k, k+1, ... (mod H).
        let s = t.set_size();
        let sets = hosts * cycles;
        let per_host = cycles * s;
        let bricks: Vec<Brick> = (1..=hosts)
            .flat_map(|h| (1..=per_host).map(move |b| format!("n{h}:/b{b}").parse().unwrap()))
            .collect();
        let p = plan(t, Layout::Chained, &bricks).unwrap();
        prop_assert_eq!(p.sets.len(), sets);
        let mut next = vec![1usize; hosts];
        for (k, set) in p.sets.iter().enumerate() {
            let want: Vec<String> = (0..s)
                .map(|i| {
                    let h = (k + i) % hosts;
                    next[h] += 1;
                    format!("n{}:/b{}", h + 1, next[h] - 1)
                })
                .collect();
            let got: Vec<String> = set.bricks.iter().map(|b| b.to_string()).collect();
            prop_assert_eq!(got, want, "set {}", k);
        }
    }
}
