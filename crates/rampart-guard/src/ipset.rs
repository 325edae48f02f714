//! CIDR sets and allow/deny lists for IPv4 and IPv6.
//!
//! An [`IpSet`] compiles any number of [`IpNet`]s into two sorted vectors of disjoint,
//! non-adjacent inclusive ranges (`u32` for IPv4, `u128` for IPv6). Overlapping and adjacent
//! networks are merged at build time, so a lookup is one binary search: O(log n) with no
//! allocation and no pointer chasing. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are
//! looked up as the IPv4 address they carry, so a `10.0.0.0/8` entry also matches a dual-stack
//! socket's view of the same client.

use std::net::IpAddr;

use ipnet::IpNet;

/// A compiled, immutable set of IP networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compile a set from networks. Host bits are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn from_nets<I: IntoIterator<Item = IpNet>>(nets: I) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net.trunc() {
                IpNet::V4(n) => {
                    // An IPv4 network also covers its IPv4-mapped IPv6 form via canonicalisation
                    // at lookup time, so it is stored once.
                    v4.push((u32::from(n.network()), u32::from(n.broadcast())));
                }
                IpNet::V6(n) => {
                    v6.push((u128::from(n.network()), u128::from(n.broadcast())));
                }
            }
        }
        Self {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether the set contains `ip` (IPv4-mapped IPv6 addresses are treated as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => lookup(&self.v4, u32::from(a)),
            IpAddr::V6(a) => lookup(&self.v6, u128::from(a)),
        }
    }

    /// `true` when the set has no network at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of disjoint ranges after merging (a measure of lookup depth, for tests and stats).
    pub fn range_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

impl FromIterator<IpNet> for IpSet {
    fn from_iter<T: IntoIterator<Item = IpNet>>(iter: T) -> Self {
        Self::from_nets(iter)
    }
}

/// Sort and merge overlapping or adjacent inclusive ranges.
fn merge<T: Copy + Ord + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = out.last_mut() {
            // Overlapping, or adjacent (last.end + 1 == start).
            if start <= last.1 || last.1.succ() == Some(start) {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end));
    }
    out.shrink_to_fit();
    out
}

fn lookup<T: Copy + Ord>(ranges: &[(T, T)], ip: T) -> bool {
    // Index of the first range whose start is > ip; the candidate is the one before it.
    let idx = ranges.partition_point(|&(start, _)| start <= ip);
    idx > 0 && ranges[idx - 1].1 >= ip
}

mod num_like {
    /// Checked successor, for adjacency merging.
    pub trait Succ: Sized {
        fn succ(self) -> Option<Self>;
    }
    impl Succ for u32 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

/// Why an address was refused by an [`IpAccessList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDenyReason {
    /// The address is in the deny list.
    DenyList,
    /// An allow list exists and the address is not in it.
    NotAllowed,
}

impl IpDenyReason {
    /// A short stable label (`deny_list`, `not_allowed`) for logs and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DenyList => "deny_list",
            Self::NotAllowed => "not_allowed",
        }
    }
}

/// An allow list and a deny list.
///
/// Semantics: an address in `deny` is refused; otherwise, when `allow` is non-empty, an address
/// not in `allow` is refused; otherwise it passes. Deny wins over allow, so "allow
/// 10.0.0.0/8 but deny 10.6.6.0/24" does what it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAccessList {
    allow: IpSet,
    deny: IpSet,
}

impl IpAccessList {
    /// Build from allow and deny networks (either may be empty).
    pub fn new(
        allow: impl IntoIterator<Item = IpNet>,
        deny: impl IntoIterator<Item = IpNet>,
    ) -> Self {
        Self {
            allow: IpSet::from_nets(allow),
            deny: IpSet::from_nets(deny),
        }
    }

    /// `Ok(())` if `ip` may pass, otherwise the reason it may not.
    pub fn check(&self, ip: IpAddr) -> Result<(), IpDenyReason> {
        if self.deny.contains(ip) {
            return Err(IpDenyReason::DenyList);
        }
        if !self.allow.is_empty() && !self.allow.contains(ip) {
            return Err(IpDenyReason::NotAllowed);
        }
        Ok(())
    }

    /// `true` when both lists are empty (every address passes).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_and_v6_membership() {
        let set = IpSet::from_nets(nets(&[
            "10.0.0.0/8",
            "192.168.1.0/24",
            "203.0.113.7/32",
            "2001:db8::/32",
            "fe80::1/128",
        ]));
        let cases = [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.168.1.77", true),
            ("192.168.2.1", false),
            ("203.0.113.7", true),
            ("203.0.113.8", false),
            ("2001:db8::1", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("fe80::1", true),
            ("fe80::2", false),
            ("::ffff:10.1.2.3", true), // IPv4-mapped
            ("::ffff:11.1.2.3", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
        ];
        for (a, want) in cases {
            assert_eq!(set.contains(ip(a)), want, "{a}");
        }
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let set = IpSet::from_nets(nets(&[
            "10.0.0.0/24",
            "10.0.1.0/24",   // adjacent
            "10.0.0.128/25", // contained
            "10.0.3.0/24",   // gap at 10.0.2.0/24
            "0.0.0.0/32",
            "255.255.255.255/32",
        ]));
        assert_eq!(set.range_count(), 4);
        assert!(set.contains(ip("10.0.1.255")));
        assert!(!set.contains(ip("10.0.2.0")));
        assert!(set.contains(ip("10.0.3.0")));
        assert!(set.contains(ip("255.255.255.255")));
        assert!(set.contains(ip("0.0.0.0")));
    }

    #[test]
    fn host_bits_are_ignored() {
        let set = IpSet::from_nets(nets(&["10.1.2.3/8"]));
        assert!(set.contains(ip("10.200.0.1")));
    }

    #[test]
    fn whole_space() {
        let set = IpSet::from_nets(nets(&["0.0.0.0/0", "::/0"]));
        assert!(set.contains(ip("1.2.3.4")));
        assert!(set.contains(ip("::1")));
        assert_eq!(set.range_count(), 2);
    }

    #[test]
    fn large_set_matches_linear_scan() {
        // Pseudo-random /24s and /16s; compare binary search with a naive scan.
        let mut x: u32 = 0x1234_5678;
        let mut list = Vec::new();
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let prefix = if i % 7 == 0 { 16 } else { 24 };
            list.push(IpNet::new(IpAddr::from(x.to_be_bytes()), prefix).unwrap());
        }
        let set = IpSet::from_nets(list.clone());
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let a = IpAddr::from(x.to_be_bytes());
            let naive = list.iter().any(|n| n.contains(&a));
            assert_eq!(set.contains(a), naive, "{a}");
        }
    }

    #[test]
    fn access_list_semantics() {
        let open = IpAccessList::default();
        assert_eq!(open.check(ip("1.2.3.4")), Ok(()));

        let deny_only = IpAccessList::new(vec![], nets(&["6.6.6.0/24"]));
        assert_eq!(deny_only.check(ip("6.6.6.6")), Err(IpDenyReason::DenyList));
        assert_eq!(deny_only.check(ip("7.7.7.7")), Ok(()));

        let both = IpAccessList::new(
            nets(&["10.0.0.0/8", "2001:db8::/32"]),
            nets(&["10.6.6.0/24"]),
        );
        assert_eq!(both.check(ip("10.1.1.1")), Ok(()));
        assert_eq!(both.check(ip("10.6.6.6")), Err(IpDenyReason::DenyList));
        assert_eq!(both.check(ip("8.8.8.8")), Err(IpDenyReason::NotAllowed));
        assert_eq!(both.check(ip("2001:db8::5")), Ok(()));
        assert_eq!(both.check(ip("2001:db9::5")), Err(IpDenyReason::NotAllowed));
    }
}
