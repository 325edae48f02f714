//! Entity tags this layer makes or changes: weakening for transformed representations and
//! generated strong tags. Comparing tags and evaluating preconditions (RFC 9110 §13.2.2) is
//! `rampart_core::conditional`, shared with the static file service.

use http::HeaderValue;

/// `W/"x"` for a strong `"x"` (a transformed representation is no longer byte-identical to
/// what the origin tagged); a weak tag stays as it is.
pub fn weaken(etag: &HeaderValue) -> HeaderValue {
    let b = etag.as_bytes();
    if b.starts_with(b"W/") {
        return etag.clone();
    }
    let mut v = Vec::with_capacity(b.len() + 2);
    v.extend_from_slice(b"W/");
    v.extend_from_slice(b);
    HeaderValue::from_bytes(&v).unwrap_or_else(|_| etag.clone())
}

/// A strong `ETag` for a body: xxh3-64, hex, quoted.
pub fn generate(body: &[u8]) -> HeaderValue {
    let tag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakened_and_generated_tags() {
        assert_eq!(weaken(&HeaderValue::from_static("\"a\"")), "W/\"a\"");
        assert_eq!(weaken(&HeaderValue::from_static("W/\"a\"")), "W/\"a\"");
        assert_eq!(generate(b"x"), generate(b"x"));
        assert_ne!(generate(b"x"), generate(b"y"));
    }
}
