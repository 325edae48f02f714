//! Safe mapping of a request path onto a file under the site root.
//!
//! Two steps:
//!
//! 1. [`decode`] (pure): the raw path (after the route prefix) is split on `/` and each
//!    segment percent-decoded **once**. A segment is refused when, decoded, it is `.` or
//!    `..`, contains `/`, `\`, NUL or another control character, still contains `%` (a
//!    double encoding such as `%252e`), or is not valid UTF-8 (this refuses overlong forms
//!    like `%c0%ae`). Dotfiles (`.git`, `.env`) are refused too, except `.well-known`.
//!    Empty segments (`//`) are skipped.
//! 2. [`resolve`] (file system): the segments are joined onto the root, the result is
//!    canonicalised (symlinks resolved) and must still lie under the canonical root unless
//!    `follow_symlinks` is on. Directories resolve to their index file; nothing is ever
//!    listed.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Why a path was refused before touching the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A `.` or `..` segment (plain or encoded).
    #[error("dot segment")]
    DotSegment,
    /// An encoded `/` or a backslash inside a segment.
    #[error("separator inside a segment")]
    Separator,
    /// NUL or another control character.
    #[error("control character")]
    Control,
    /// `%` left after one decoding (double encoding).
    #[error("double encoding")]
    DoubleEncoding,
    /// Bytes that are not UTF-8 (overlong encodings included).
    #[error("invalid utf-8")]
    Utf8,
    /// A hidden file or directory (`.name`, except `.well-known`).
    #[error("hidden file")]
    Hidden,
}

/// Decode `path` (the part of the request path below the route prefix, without the query)
/// into safe segments. `trailing_slash` tells whether the path ended with `/`.
pub fn decode(path: &str) -> Result<Decoded, Refused> {
    let mut segments = Vec::new();
    for raw in path.split('/') {
        if raw.is_empty() {
            continue;
        }
        if raw.contains('\\') {
            return Err(Refused::Separator);
        }
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        let seg = String::from_utf8(bytes).map_err(|_| Refused::Utf8)?;
        if seg == "." || seg == ".." {
            return Err(Refused::DotSegment);
        }
        if seg.contains(['/', '\\']) {
            return Err(Refused::Separator);
        }
        if seg.chars().any(char::is_control) {
            return Err(Refused::Control);
        }
        if seg.contains('%') {
            return Err(Refused::DoubleEncoding);
        }
        if seg.starts_with('.') && seg != ".well-known" {
            return Err(Refused::Hidden);
        }
        segments.push(seg);
    }
    Ok(Decoded {
        segments,
        trailing_slash: path.ends_with('/'),
    })
}

/// A decoded, checked path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Path segments, each a plain file name.
    pub segments: Vec<String>,
    /// The request path ended with `/`.
    pub trailing_slash: bool,
}

/// What a decoded path resolved to.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file (canonical path) and its metadata.
    File(PathBuf, std::fs::Metadata),
    /// A directory asked for without the trailing slash: redirect to `path/`.
    AddSlash,
}

/// Why resolution found nothing to serve (all answered 404: the client learns nothing
/// about what exists outside the root).
#[derive(Debug, thiserror::Error)]
pub enum NotServed {
    /// Nothing there (or not readable).
    #[error("not found")]
    NotFound,
    /// The canonical path left the root through a symlink.
    #[error("symlink leaves the root")]
    Escapes,
    /// A directory without an index file (no listing).
    #[error("directory without index")]
    NoIndex,
    /// Something that is neither a file nor a directory (socket, fifo, device).
    #[error("not a regular file")]
    Special,
}

/// Map `decoded` onto a file under `root` (`root` must be canonical).
pub async fn resolve(
    root: &Path,
    decoded: &Decoded,
    index: &str,
    follow_symlinks: bool,
) -> Result<Resolved, NotServed> {
    let mut path = root.to_path_buf();
    for s in &decoded.segments {
        path.push(s);
    }
    let canonical = checked_canonical(root, &path, follow_symlinks).await?;
    let meta = tokio::fs::metadata(&canonical)
        .await
        .map_err(|_| NotServed::NotFound)?;
    if meta.is_dir() {
        if !decoded.trailing_slash && !decoded.segments.is_empty() {
            return Ok(Resolved::AddSlash);
        }
        if index.is_empty() {
            return Err(NotServed::NoIndex);
        }
        let idx = checked_canonical(root, &canonical.join(index), follow_symlinks)
            .await
            .map_err(|e| match e {
                NotServed::NotFound => NotServed::NoIndex,
                e => e,
            })?;
        let meta = tokio::fs::metadata(&idx)
            .await
            .map_err(|_| NotServed::NoIndex)?;
        if !meta.is_file() {
            return Err(NotServed::NoIndex);
        }
        return Ok(Resolved::File(idx, meta));
    }
    if !meta.is_file() {
        return Err(NotServed::Special);
    }
    if decoded.trailing_slash {
        // `/file.txt/` names a directory that does not exist.
        return Err(NotServed::NotFound);
    }
    Ok(Resolved::File(canonical, meta))
}

async fn checked_canonical(
    root: &Path,
    path: &Path,
    follow_symlinks: bool,
) -> Result<PathBuf, NotServed> {
    let canonical = tokio::fs::canonicalize(path)
        .await
        .map_err(|_| NotServed::NotFound)?;
    if !follow_symlinks && !canonical.starts_with(root) {
        return Err(NotServed::Escapes);
    }
    Ok(canonical)
}

/// The canonical path of a sidecar (`file.br`), if it is a regular file under the root (or
/// `follow_symlinks`). Sidecars are found by name next to the file.
pub async fn sidecar(
    root: &Path,
    file: &Path,
    suffix: &str,
    follow_symlinks: bool,
) -> Option<(PathBuf, std::fs::Metadata)> {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    let canonical = checked_canonical(root, Path::new(&name), follow_symlinks)
        .await
        .ok()?;
    let meta = tokio::fs::metadata(&canonical).await.ok()?;
    meta.is_file().then_some((canonical, meta))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn plain_paths_decode() {
        let d = decode("/a/b%20c/d.txt").unwrap();
        assert_eq!(d.segments, ["a", "b c", "d.txt"]);
        assert!(!d.trailing_slash);
        let d = decode("/docs//").unwrap();
        assert_eq!(d.segments, ["docs"]);
        assert!(d.trailing_slash);
        assert_eq!(decode("/").unwrap().segments, Vec::<String>::new());
        assert_eq!(
            decode("/.well-known/x").unwrap().segments,
            [".well-known", "x"]
        );
        // A dot inside a name is fine.
        assert!(decode("/app.3f2a9c1d.js").is_ok());
        assert!(decode("/a..b").is_ok());
    }

    #[test]
    fn traversal_attempts_are_refused() {
        for (p, why) in [
            ("/../etc/passwd", Refused::DotSegment),
            ("/a/./b", Refused::DotSegment),
            ("/%2e%2e/etc/passwd", Refused::DotSegment),
            ("/%2E%2E/etc/passwd", Refused::DotSegment),
            ("/.%2e/x", Refused::DotSegment),
            ("/a/..%2fetc", Refused::Separator),
            ("/a/%2e%2e%2fetc", Refused::Separator),
            ("/..%5cetc", Refused::Separator),
            ("/a\\..\\etc", Refused::Separator),
            ("/a%5c..%5cetc", Refused::Separator),
            ("/passwd%00.txt", Refused::Control),
            ("/a%0d%0ab", Refused::Control),
            ("/%252e%252e/etc", Refused::DoubleEncoding),
            ("/%c0%ae%c0%ae/etc", Refused::Utf8),
            ("/%c0%af", Refused::Utf8),
            ("/%e0%80%ae", Refused::Utf8),
            ("/%ff", Refused::Utf8),
            ("/.git/config", Refused::Hidden),
            ("/.env", Refused::Hidden),
        ] {
            assert_eq!(decode(p), Err(why), "{p}");
        }
    }

    #[tokio::test]
    async fn resolution_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/index.html"), "i").unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
            std::os::unix::fs::symlink(root.join("a.txt"), root.join("in")).unwrap();
        }
        let r = |p: &str, follow: bool| {
            let root = root.clone();
            let d = decode(p).unwrap();
            async move { resolve(&root, &d, "index.html", follow).await }
        };
        assert!(matches!(r("/a.txt", false).await, Ok(Resolved::File(..))));
        assert!(matches!(r("/sub", false).await, Ok(Resolved::AddSlash)));
        match r("/sub/", false).await {
            Ok(Resolved::File(p, _)) => assert!(p.ends_with("sub/index.html")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r("/empty/", false).await, Err(NotServed::NoIndex)));
        assert!(matches!(r("/nope", false).await, Err(NotServed::NotFound)));
        assert!(matches!(
            r("/a.txt/", false).await,
            Err(NotServed::NotFound)
        ));
        #[cfg(unix)]
        {
            assert!(matches!(r("/out", false).await, Err(NotServed::Escapes)));
            assert!(matches!(r("/out", true).await, Ok(Resolved::File(..))));
            assert!(matches!(r("/in", false).await, Ok(Resolved::File(..))));
        }
    }
}
