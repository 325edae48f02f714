//! The memory store's purge indexes, per shard, holding 32-bit key hashes (the full keys
//! stay in the arena and are compared when a purge resolves a hash):
//!
//! * **directory → keys** (`BTreeMap`): the URL up to its last `/` before the query. Purge
//!   by prefix range-scans the directories that start with the prefix (every object in
//!   them matches) and checks the objects of the one directory the prefix ends inside, so
//!   it costs the matches plus that directory's siblings, never a scan of the cache. One
//!   node and string per *directory*, not per object; a directory's members are inline
//!   for one key, a vector up to 32, then a hash set of `u32`.
//! * **origin → directory count**, so a path prefix (`/static/`) runs once per origin.
//! * **tag → keys** (`HashMap`).
//! * **URL → keys for keys that are not their URL** (key policies with headers, cookies,
//!   sorted or filtered queries): `(url hash, key hash)` pairs. A key equal to its URL (the
//!   default) needs nothing here: purge by URL looks the URL up as a key.

use std::collections::{BTreeMap, HashMap};

use hashbrown::{DefaultHashBuilder, HashTable};

/// Spread a 32-bit hash over 64 bits for `HashTable` (bucket from the low bits, control
/// tag from the top seven).
pub(crate) fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The directory of a URL: up to and including the last `/` before the query.
pub(crate) fn dir_of(url: &str) -> &str {
    let end = url.find('?').unwrap_or(url.len());
    let path = &url[..end];
    let after = path.find("://").map_or(0, |i| i + 3);
    match path[after..].rfind('/') {
        Some(i) => &url[..after + i + 1],
        None => path,
    }
}

/// The origin of a URL (`scheme://host[:port]`).
pub(crate) fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

const FEW: usize = 32;

/// A set of key hashes.
#[derive(Debug)]
pub(crate) enum Members {
    One(u32),
    Few(Vec<u32>),
    Many(HashTable<u32>),
}

impl Members {
    fn contains(&self, h: u32) -> bool {
        match self {
            Self::One(x) => *x == h,
            Self::Few(v) => v.contains(&h),
            Self::Many(t) => t.find(spread(h), |x| *x == h).is_some(),
        }
    }

    /// Add `h` (no duplicates).
    fn insert(&mut self, h: u32) {
        if self.contains(h) {
            return;
        }
        match self {
            Self::One(x) => *self = Self::Few(vec![*x, h]),
            Self::Few(v) if v.len() < FEW => v.push(h),
            Self::Few(v) => {
                let mut t = HashTable::with_capacity(v.len() * 2);
                for x in v.iter().copied().chain([h]) {
                    t.insert_unique(spread(x), x, |y| spread(*y));
                }
                *self = Self::Many(t);
            }
            Self::Many(t) => {
                t.insert_unique(spread(h), h, |y| spread(*y));
            }
        }
    }

    /// Remove `h`; returns whether the set is now empty.
    fn remove(&mut self, h: u32) -> bool {
        match self {
            Self::One(x) => *x == h,
            Self::Few(v) => {
                v.retain(|x| *x != h);
                match v[..] {
                    [] => true,
                    [one] => {
                        *self = Self::One(one);
                        false
                    }
                    _ => false,
                }
            }
            Self::Many(t) => {
                if let Ok(e) = t.find_entry(spread(h), |x| *x == h) {
                    e.remove();
                }
                if t.len() <= FEW / 2 {
                    *self = Self::Few(t.iter().copied().collect());
                }
                false
            }
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(x) => vec![*x],
            Self::Few(v) => v.clone(),
            Self::Many(t) => t.iter().copied().collect(),
        }
    }

    /// Heap bytes held.
    fn heap(&self) -> usize {
        match self {
            Self::One(_) => 0,
            Self::Few(v) => 16 + v.capacity() * 4,
            Self::Many(t) => 16 + t.allocation_size(),
        }
    }
}

/// Bytes charged per map entry beyond its strings and members: the B-tree or hash map slot
/// and the string's allocation header.
const ENTRY_COST: usize = 64;

/// The purge indexes of one shard.
#[derive(Debug, Default)]
pub(crate) struct PurgeIndex {
    dirs: BTreeMap<Box<str>, Members>,
    origins: BTreeMap<Box<str>, usize>,
    tags: HashMap<Box<str>, Members, DefaultHashBuilder>,
    /// `(url hash, key hash)` of stored variants whose URL is not their key.
    alt: HashTable<(u32, u32)>,
    /// Estimated heap of the maps above (the alternate table is measured).
    bytes: usize,
}

fn add_member<M: MapLike>(map: &mut M, name: &str, h: u32, bytes: &mut usize) -> bool {
    match map.get_mut(name) {
        Some(m) => {
            let before = m.heap();
            m.insert(h);
            *bytes = *bytes - before + m.heap();
            false
        }
        None => {
            map.insert(Box::from(name), Members::One(h));
            *bytes += ENTRY_COST + name.len();
            true
        }
    }
}

fn remove_member<M: MapLike>(map: &mut M, name: &str, h: u32, bytes: &mut usize) -> bool {
    let Some(m) = map.get_mut(name) else {
        return false;
    };
    let before = m.heap();
    if m.remove(h) {
        map.remove(name);
        *bytes -= before + ENTRY_COST + name.len();
        true
    } else {
        *bytes = *bytes - before + m.heap();
        false
    }
}

/// The two map types the members live in.
trait MapLike {
    fn get_mut(&mut self, k: &str) -> Option<&mut Members>;
    fn insert(&mut self, k: Box<str>, m: Members);
    fn remove(&mut self, k: &str);
}

impl MapLike for BTreeMap<Box<str>, Members> {
    fn get_mut(&mut self, k: &str) -> Option<&mut Members> {
        BTreeMap::get_mut(self, k)
    }
    fn insert(&mut self, k: Box<str>, m: Members) {
        BTreeMap::insert(self, k, m);
    }
    fn remove(&mut self, k: &str) {
        BTreeMap::remove(self, k);
    }
}

impl MapLike for HashMap<Box<str>, Members, DefaultHashBuilder> {
    fn get_mut(&mut self, k: &str) -> Option<&mut Members> {
        HashMap::get_mut(self, k)
    }
    fn insert(&mut self, k: Box<str>, m: Members) {
        HashMap::insert(self, k, m);
    }
    fn remove(&mut self, k: &str) {
        HashMap::remove(self, k);
    }
}

impl PurgeIndex {
    /// Bytes charged.
    pub(crate) fn charged(&self) -> usize {
        self.bytes + self.alt.allocation_size()
    }

    /// Index a stored variant: key hash `h`, its URL (with the URL's hash when the URL is not
    /// the key) and tags.
    pub(crate) fn add<'t>(
        &mut self,
        h: u32,
        url: &str,
        alt_url_hash: Option<u32>,
        tags: impl Iterator<Item = &'t str>,
    ) {
        let dir = dir_of(url);
        if add_member(&mut self.dirs, dir, h, &mut self.bytes) {
            let origin = origin_of(dir);
            match self.origins.get_mut(origin) {
                Some(n) => *n += 1,
                None => {
                    self.origins.insert(Box::from(origin), 1);
                    self.bytes += ENTRY_COST + origin.len();
                }
            }
        }
        for t in tags {
            add_member(&mut self.tags, t, h, &mut self.bytes);
        }
        if let Some(u) = alt_url_hash
            && self.alt.find(spread(u), |e| *e == (u, h)).is_none()
        {
            self.alt
                .insert_unique(spread(u), (u, h), |(u, _)| spread(*u));
        }
    }

    /// Drop key hash `h` from the directory of `url`.
    pub(crate) fn remove_dir(&mut self, h: u32, url: &str) {
        let dir = dir_of(url);
        if remove_member(&mut self.dirs, dir, h, &mut self.bytes) {
            let origin = origin_of(dir);
            if let Some(n) = self.origins.get_mut(origin) {
                *n -= 1;
                if *n == 0 {
                    self.origins.remove(origin);
                    self.bytes -= ENTRY_COST + origin.len();
                }
            }
        }
    }

    /// Drop key hash `h` from tag `tag`.
    pub(crate) fn remove_tag(&mut self, h: u32, tag: &str) {
        remove_member(&mut self.tags, tag, h, &mut self.bytes);
    }

    /// Drop the pair (URL hash `u`, key hash `h`).
    pub(crate) fn remove_alt(&mut self, u: u32, h: u32) {
        if let Ok(e) = self.alt.find_entry(spread(u), |e| *e == (u, h)) {
            e.remove();
        }
        if self.alt.is_empty() {
            self.alt = HashTable::new();
        }
    }

    /// Key hashes of the variants whose URL hashes to `u` and is not their key.
    pub(crate) fn alt_keys(&self, u: u32) -> Vec<u32> {
        self.alt
            .iter_hash(spread(u))
            .filter(|(x, _)| *x == u)
            .map(|(_, h)| *h)
            .collect()
    }

    /// Key hashes carrying `tag`.
    pub(crate) fn tag_keys(&self, tag: &str) -> Vec<u32> {
        self.tags.get(tag).map(Members::to_vec).unwrap_or_default()
    }

    /// Key hashes that may have a URL starting with `prefix` (a URL prefix, or a path prefix
    /// starting with `/` applied to every origin), each with the URL prefix to check it
    /// against: every key of a directory inside the prefix, and the keys of the directory
    /// the prefix ends in.
    pub(crate) fn prefix_candidates(&self, prefix: &str) -> Vec<(String, Vec<u32>)> {
        let starts: Vec<String> = if prefix.starts_with('/') {
            self.origins
                .keys()
                .map(|o| format!("{o}{prefix}"))
                .collect()
        } else {
            vec![prefix.to_owned()]
        };
        let mut out = Vec::new();
        for start in starts {
            let mut keys = Vec::new();
            let from = (
                std::ops::Bound::Included(start.as_str()),
                std::ops::Bound::Unbounded,
            );
            for (dir, m) in self.dirs.range::<str, _>(from) {
                if !dir.starts_with(start.as_str()) {
                    break;
                }
                keys.extend(m.to_vec());
            }
            let dir = dir_of(&start);
            if dir.len() < start.len()
                && let Some(m) = self.dirs.get(dir)
            {
                keys.extend(m.to_vec());
            }
            if !keys.is_empty() {
                out.push((start, keys));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_and_origins() {
        assert_eq!(dir_of("http://h/a/b.css?x=/y"), "http://h/a/");
        assert_eq!(dir_of("http://h/"), "http://h/");
        assert_eq!(dir_of("http://h"), "http://h");
        assert_eq!(dir_of("/static/a"), "/static/");
        assert_eq!(origin_of("https://h:8443/a/"), "https://h:8443");
    }

    #[test]
    fn members_grow_and_shrink() {
        let mut m = Members::One(1);
        for h in 2..100 {
            m.insert(h);
        }
        m.insert(5);
        assert_eq!(m.to_vec().len(), 99);
        assert!(matches!(m, Members::Many(_)));
        for h in 2..100 {
            assert!(!m.remove(h));
        }
        assert!(matches!(m, Members::One(1)));
        assert!(m.remove(1));
    }

    #[test]
    fn prefix_candidates_cover_inner_and_enclosing_directories() {
        let mut ix = PurgeIndex::default();
        ix.add(1, "http://h/static/a.css", None, std::iter::empty());
        ix.add(2, "http://h/static/img/b.png", None, std::iter::empty());
        ix.add(3, "http://h/stats.json", None, std::iter::empty());
        ix.add(4, "http://other/static/c.css", None, ["t"].into_iter());
        fn keys(ix: &PurgeIndex, p: &str) -> Vec<u32> {
            let mut v: Vec<u32> = ix
                .prefix_candidates(p)
                .into_iter()
                .flat_map(|(_, k)| k)
                .collect();
            v.sort_unstable();
            v
        }
        assert_eq!(keys(&ix, "http://h/static/"), vec![1, 2]);
        assert_eq!(keys(&ix, "/static/"), vec![1, 2, 4]);
        // Ends inside "http://h/": its keys are candidates, checked by the caller.
        assert_eq!(keys(&ix, "http://h/sta"), vec![1, 2, 3]);
        assert_eq!(ix.tag_keys("t"), vec![4]);
        let before = ix.charged();
        ix.remove_dir(4, "http://other/static/c.css");
        ix.remove_tag(4, "t");
        assert_eq!(keys(&ix, "/static/"), vec![1, 2]);
        assert!(ix.tag_keys("t").is_empty());
        assert!(ix.charged() < before);
        ix.add(5, "http://h/a?x=1", Some(77), std::iter::empty());
        assert_eq!(ix.alt_keys(77), vec![5]);
        ix.remove_alt(77, 5);
        assert!(ix.alt_keys(77).is_empty());
    }
}
