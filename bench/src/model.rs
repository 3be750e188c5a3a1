//! The peer-to-peer lower bound for fan-out, and the ratios reported
//! against it.

/// Rates of one fan-out: every rate in bits per second.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOut {
    /// Snapshot size in bytes.
    pub bytes: u64,
    /// The origin's upload rate.
    pub origin_up: f64,
    /// Each mirror's (upload, download) rate.
    pub mirrors: Vec<(f64, f64)>,
}

impl FanOut {
    /// Every host shaped to the same `rate` up and down.
    pub fn uniform(bytes: u64, rate_bits: f64, mirrors: usize) -> FanOut {
        FanOut {
            bytes,
            origin_up: rate_bits,
            mirrors: vec![(rate_bits, rate_bits); mirrors],
        }
    }

    /// Seconds no distribution scheme can beat:
    /// `max(S/u_origin, S/d_min, N·S/(u_origin + Σ u_mirrors))`.
    ///
    /// The origin must send every byte at least once; the slowest mirror
    /// must receive every byte; and the N·S bytes the mirrors receive in
    /// total must all be uploaded by someone.
    pub fn lower_bound_seconds(&self) -> f64 {
        let s = self.bytes as f64 * 8.0;
        let n = self.mirrors.len() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let d_min = self
            .mirrors
            .iter()
            .map(|m| m.1)
            .fold(f64::INFINITY, f64::min);
        let up_total = self.origin_up + self.mirrors.iter().map(|m| m.0).sum::<f64>();
        (s / self.origin_up).max(s / d_min).max(n * s / up_total)
    }

    /// The bound for a subset of the mirrors (`who`, indices into
    /// [`FanOut::mirrors`]) while every mirror takes part:
    /// `max(S/u_origin, S/d_min(who), |who|·S/(u_origin + Σ u_all))`.
    ///
    /// Only the mirrors in `who` must receive every byte, so only their
    /// downloads bound the time and only their |who|·S bytes must be
    /// uploaded; every mirror's upload (the others' too) may carry them.
    /// With `who` = all mirrors this is [`FanOut::lower_bound_seconds`].
    /// The fault cases use it for the fast mirrors when one is slow: the
    /// slow mirror's download no longer bounds them, its upload still
    /// counts (a relaxation, so it stays a lower bound).
    pub fn lower_bound_for(&self, who: &[usize]) -> f64 {
        let s = self.bytes as f64 * 8.0;
        if who.is_empty() {
            return 0.0;
        }
        let d_min = who
            .iter()
            .map(|&i| self.mirrors[i].1)
            .fold(f64::INFINITY, f64::min);
        let up_total = self.origin_up + self.mirrors.iter().map(|m| m.0).sum::<f64>();
        (s / self.origin_up)
            .max(s / d_min)
            .max(who.len() as f64 * s / up_total)
    }

    /// One mirror at `slow` bits/s up and down among `n` mirrors at
    /// `rate` (the last one is the slow one), origin at `rate`.
    pub fn one_slow(bytes: u64, rate_bits: f64, n: usize, slow: f64) -> FanOut {
        let mut f = FanOut::uniform(bytes, rate_bits, n);
        if let Some(m) = f.mirrors.last_mut() {
            *m = (slow, slow);
        }
        f
    }

    /// Seconds an origin that uploads every byte to every mirror itself
    /// (the rsync fan-out) needs at least: `max(N·S/u_origin, S/d_min)`.
    pub fn client_server_seconds(&self) -> f64 {
        let s = self.bytes as f64 * 8.0;
        let n = self.mirrors.len() as f64;
        let d_min = self
            .mirrors
            .iter()
            .map(|m| m.1)
            .fold(f64::INFINITY, f64::min);
        (n * s / self.origin_up).max(s / d_min)
    }
}

/// `a / b`, or NaN when `b` is not positive (rendered as "n/a").
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// Median of the values (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_rates_give_s_over_u() {
        // 100 MB at 100 Mbit/s: 8 s, whatever N is (the N/(N+1) term is
        // smaller than S/u).
        for n in [1, 2, 4, 8, 100] {
            let f = FanOut::uniform(100_000_000, 100e6, n);
            assert!((f.lower_bound_seconds() - 8.0).abs() < 1e-9, "n={n}");
        }
    }

    #[test]
    fn each_term_can_dominate() {
        // Slow origin: S/u_origin.
        let f = FanOut {
            bytes: 1_000_000,
            origin_up: 1e6,
            mirrors: vec![(100e6, 100e6); 4],
        };
        assert!((f.lower_bound_seconds() - 8.0).abs() < 1e-9);
        // One slow downloader: S/d_min.
        let f = FanOut {
            bytes: 1_000_000,
            origin_up: 100e6,
            mirrors: vec![(100e6, 100e6), (100e6, 2e6)],
        };
        assert!((f.lower_bound_seconds() - 4.0).abs() < 1e-9);
        // Mirrors that barely upload: the total upload term.
        // 10 mirrors × 8 Mbit = 80 Mbit over 10 + 10·0.1 = 11 Mbit/s.
        let f = FanOut {
            bytes: 1_000_000,
            origin_up: 10e6,
            mirrors: vec![(0.1e6, 100e6); 10],
        };
        assert!((f.lower_bound_seconds() - 80.0 / 11.0).abs() < 1e-9);
    }

    #[test]
    fn bound_for_the_fast_mirrors_when_one_is_slow() {
        // 100 MB, 4 mirrors at 100 Mbit/s but the last at 25: everyone is
        // bound by the slow download (32 s), the fast three by S/u (8 s).
        let f = FanOut::one_slow(100_000_000, 100e6, 4, 25e6);
        assert_eq!(f.mirrors[3], (25e6, 25e6));
        assert!((f.lower_bound_seconds() - 32.0).abs() < 1e-9);
        assert!((f.lower_bound_for(&[0, 1, 2]) - 8.0).abs() < 1e-9);
        assert!((f.lower_bound_for(&[3]) - 32.0).abs() < 1e-9);
        // Every mirror: the same as the plain bound.
        assert_eq!(f.lower_bound_for(&[0, 1, 2, 3]), f.lower_bound_seconds());
        assert_eq!(f.lower_bound_for(&[]), 0.0);
        // The upload term counts every mirror's upload, the slow one's too:
        // 3 × 8 Mbit over 10 + 3·1 + 0.5 = 13.5 Mbit/s.
        let f = FanOut {
            bytes: 1_000_000,
            origin_up: 10e6,
            mirrors: vec![(1e6, 100e6), (1e6, 100e6), (1e6, 100e6), (0.5e6, 1e6)],
        };
        assert!((f.lower_bound_for(&[0, 1, 2]) - 24.0 / 13.5).abs() < 1e-9);
    }

    #[test]
    fn client_server_grows_with_n() {
        let f = FanOut::uniform(100_000_000, 100e6, 8);
        assert!((f.client_server_seconds() - 64.0).abs() < 1e-9);
        assert!((ratio(f.client_server_seconds(), f.lower_bound_seconds()) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn no_mirrors_no_time() {
        assert_eq!(FanOut::uniform(1, 1.0, 0).lower_bound_seconds(), 0.0);
    }

    #[test]
    fn ratio_and_median() {
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
