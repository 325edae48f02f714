//! Endpoint selection algorithms, pure: they see candidates (indices into the pool) and a
//! per-candidate load or weight, never sockets or clocks.
//!
//! * smooth weighted round robin (nginx): each pick adds every candidate's weight to its
//!   running score, takes the highest and subtracts the total from it, which spreads a
//!   5:1:1 pool as `a a b a c a a` rather than `a a a a a b c`;
//! * power of two choices: two distinct random candidates, the one with the lower cost wins
//!   (least requests: in-flight / weight; EWMA: latency × (in-flight + 1) / weight);
//! * weighted random;
//! * weighted rendezvous hashing: each (key, endpoint) pair gets a score
//!   `-weight / ln(u)` with `u` a uniform hash in (0, 1); the highest wins. Removing an
//!   endpoint only moves the keys it owned (~1/n of them).

use std::hash::{Hash, Hasher};

/// `balance = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// In turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin.
    WeightedRoundRobin,
    /// Least in flight, P2C.
    LeastRequests,
    /// Peak-EWMA × in flight, P2C.
    Ewma,
    /// Weighted random.
    Random,
    /// Rendezvous hashing.
    Hash,
}

/// Smooth weighted round robin over `cands` (`(index, weight)`); `current` holds one running
/// score per pool endpoint. Returns the chosen index.
pub(crate) fn smooth_wrr(current: &mut [i64], cands: &[(usize, i64)]) -> Option<usize> {
    let total: i64 = cands.iter().map(|c| c.1).sum();
    let mut best: Option<usize> = None;
    for &(i, w) in cands {
        let Some(c) = current.get_mut(i) else {
            continue;
        };
        *c += w;
        let v = *c;
        if best.is_none_or(|b| v > current_at(current, b)) {
            best = Some(i);
        }
    }
    if let Some(b) = best
        && let Some(c) = current.get_mut(b)
    {
        *c -= total;
    }
    best
}

fn current_at(current: &[i64], i: usize) -> i64 {
    current.get(i).copied().unwrap_or(i64::MIN)
}

/// Power of two choices: `r1`, `r2` are random numbers; the cheaper of two distinct
/// candidates wins.
pub(crate) fn p2c(cands: &[(usize, f64)], r1: u64, r2: u64) -> Option<usize> {
    match cands.len() {
        0 => None,
        1 => Some(cands[0].0),
        n => {
            let a = (r1 % n as u64) as usize;
            let mut b = (r2 % (n as u64 - 1)) as usize;
            if b >= a {
                b += 1;
            }
            let (ia, ca) = cands[a];
            let (ib, cb) = cands[b];
            Some(if cb < ca { ib } else { ia })
        }
    }
}

/// Weighted random pick with the random number `r`.
pub(crate) fn weighted_random(cands: &[(usize, f64)], r: u64) -> Option<usize> {
    let total: f64 = cands.iter().map(|c| c.1.max(0.0)).sum();
    if cands.is_empty() {
        return None;
    }
    if total <= 0.0 {
        return Some(cands[(r % cands.len() as u64) as usize].0);
    }
    let mut x = (r as f64 / u64::MAX as f64) * total;
    for &(i, w) in cands {
        x -= w.max(0.0);
        if x < 0.0 {
            return Some(i);
        }
    }
    cands.last().map(|c| c.0)
}

/// A stable 64-bit hash (SipHash with fixed keys: the same in every process and run).
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Weighted rendezvous hashing: the candidate (`(index, endpoint id, weight)`) with the
/// highest score for `key` wins.
pub(crate) fn rendezvous(cands: &[(usize, &str, f64)], key: &[u8]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for &(i, id, w) in cands {
        let h = stable_hash(&[key, id.as_bytes()]);
        // Uniform in (0, 1), never 0 or 1.
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = -w / u.ln();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_wrr_spreads_like_nginx() {
        // (weights, expected sequence of picks)
        let table: &[(&[i64], &[usize])] = &[
            (&[5, 1, 1], &[0, 0, 1, 0, 2, 0, 0]),
            (&[1, 1, 1], &[0, 1, 2, 0, 1, 2]),
            (&[2, 1], &[0, 1, 0, 0, 1, 0]),
        ];
        for (weights, want) in table {
            let cands: Vec<(usize, i64)> = weights.iter().copied().enumerate().collect();
            let mut cur = vec![0; weights.len()];
            let got: Vec<usize> = want
                .iter()
                .map(|_| smooth_wrr(&mut cur, &cands).unwrap())
                .collect();
            assert_eq!(&got, want, "weights {weights:?}");
        }
        assert_eq!(smooth_wrr(&mut [], &[]), None);
    }

    #[test]
    fn smooth_wrr_skips_missing_candidates() {
        let mut cur = vec![0; 3];
        // Endpoint 0 is out: only 1 and 2 take turns.
        let cands = [(1, 1), (2, 1)];
        let picks: Vec<_> = (0..4)
            .map(|_| smooth_wrr(&mut cur, &cands).unwrap())
            .collect();
        assert_eq!(picks, [1, 2, 1, 2]);
    }

    #[test]
    fn p2c_prefers_the_cheaper_of_two() {
        let cands = [(0, 5.0), (1, 1.0), (2, 9.0)];
        // (r1, r2, expected): r1 picks a, r2 picks b among the others.
        let table = [(0, 0, 1), (0, 1, 0), (2, 0, 0), (2, 1, 1), (1, 1, 1)];
        for (r1, r2, want) in table {
            assert_eq!(p2c(&cands, r1, r2), Some(want), "r1 {r1} r2 {r2}");
        }
        assert_eq!(p2c(&[(7, 1.0)], 3, 4), Some(7));
        assert_eq!(p2c(&[], 3, 4), None);
    }

    #[test]
    fn weighted_random_follows_weights() {
        let cands = [(0, 3.0), (1, 1.0)];
        let mut counts = [0; 2];
        for k in 0..1000u64 {
            let r = stable_hash(&[&k.to_le_bytes()]);
            counts[weighted_random(&cands, r).unwrap()] += 1;
        }
        assert!((650..850).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn rendezvous_moves_only_the_removed_endpoints_keys() {
        let ids = ["a:1", "b:1", "c:1", "d:1"];
        let all: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (i, *id, 1.0))
            .collect();
        let without_c: Vec<_> = all.iter().copied().filter(|c| c.0 != 2).collect();
        let (mut moved, mut on_c) = (0, 0);
        let mut per = [0; 4];
        for k in 0..4000u32 {
            let key = k.to_string();
            let before = rendezvous(&all, key.as_bytes()).unwrap();
            let after = rendezvous(&without_c, key.as_bytes()).unwrap();
            per[before] += 1;
            if before == 2 {
                on_c += 1;
            }
            if before != after {
                moved += 1;
                assert_eq!(before, 2, "only keys of the removed endpoint move");
            }
        }
        assert_eq!(moved, on_c);
        for p in per {
            assert!((800..1200).contains(&p), "uneven spread {per:?}");
        }
    }

    #[test]
    fn rendezvous_weights_shift_share() {
        let cands = [(0, "a", 3.0), (1, "b", 1.0)];
        let n = (0..4000u32)
            .filter(|k| rendezvous(&cands, k.to_string().as_bytes()) == Some(0))
            .count();
        assert!((2800..3200).contains(&n), "{n}");
    }
}
