//! HTML: a conservative minifier of our own.
//!
//! * comments are removed, except conditional comments (`<!--[if …`) and server-side
//!   includes (`<!--#…`);
//! * each run of whitespace in text collapses to one character (a newline if the run had
//!   one, else a space); whitespace is never removed entirely, so inline layout is kept;
//! * tags are copied byte for byte (attribute values are never touched);
//! * `<pre>`, `<textarea>`, `<xmp>`, `<listing>`, `<plaintext>` content is copied verbatim;
//! * inline `<style>` goes through [`super::css`], inline `<script>` through [`super::js`]
//!   (classic scripts and modules) or [`super::json`] (JSON, import maps), each falling
//!   back to the original text.
//!
//! Declined (served unchanged): invalid UTF-8, an unterminated comment, tag, `<script>`,
//! `<style>` or verbatim element. Known limit, shared by every HTML minifier: an element
//! styled `white-space: pre` by CSS sees its whitespace runs collapsed.

const VERBATIM: &[&[u8]] = &[b"pre", b"textarea", b"xmp", b"listing"];

/// Minify `input`; `None` = serve it unchanged.
pub fn html(input: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(input).ok()?;
    let lower = input.to_ascii_lowercase();
    let mut out = Vec::with_capacity(input.len());
    let mut ws: Option<u8> = None;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                if c == b'\n' || c == b'\r' {
                    ws = Some(b'\n');
                } else if ws.is_none() {
                    ws = Some(b' ');
                }
                i += 1;
            }
            b'<' if lower[i..].starts_with(b"<!--") => {
                let end = find(&lower, i + 4, b"-->")? + 3;
                let keep = lower[i..].starts_with(b"<!--[if") || lower[i..].starts_with(b"<!--#");
                if keep {
                    flush(&mut out, &mut ws);
                    out.extend_from_slice(&input[i..end]);
                }
                i = end;
            }
            b'<' if lower.get(i + 1).is_some_and(u8::is_ascii_alphabetic) => {
                flush(&mut out, &mut ws);
                let end = tag_end(input, i)?;
                out.extend_from_slice(&input[i..end]);
                let name_end = (i + 1..end)
                    .find(|&k| !lower[k].is_ascii_alphanumeric())
                    .unwrap_or(end);
                let name = &lower[i + 1..name_end];
                let tag = &lower[i..end];
                i = end;
                if name == b"plaintext" {
                    out.extend_from_slice(&input[i..]);
                    return Some(out);
                }
                let raw = name == b"script" || name == b"style" || VERBATIM.contains(&name);
                if raw && !tag.ends_with(b"/>") {
                    let mut close = b"</".to_vec();
                    close.extend_from_slice(name);
                    let stop = find(&lower, i, &close)?;
                    let content = &input[i..stop];
                    let done = match name {
                        b"script" => script(tag, content),
                        b"style" => super::css::css(content),
                        _ => None,
                    };
                    out.extend_from_slice(done.as_deref().unwrap_or(content));
                    i = stop;
                }
            }
            b'<' if matches!(lower.get(i + 1), Some(b'/' | b'!' | b'?')) => {
                flush(&mut out, &mut ws);
                let end = find(&lower, i, b">")? + 1;
                out.extend_from_slice(&input[i..end]);
                i = end;
            }
            _ => {
                flush(&mut out, &mut ws);
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

fn flush(out: &mut Vec<u8>, ws: &mut Option<u8>) {
    if let Some(w) = ws.take()
        && !out.is_empty()
    {
        out.push(w);
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// End (exclusive) of the tag starting at `start`, with quoted attribute values skipped.
fn tag_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => return Some(i + 1),
            None => {}
        }
        i += 1;
    }
    None
}

/// Inline script content by its `type`.
fn script(tag: &[u8], content: &[u8]) -> Option<Vec<u8>> {
    let ty = attr(tag, b"type").unwrap_or_default();
    let ty = ty.trim_ascii();
    match ty {
        b""
        | b"text/javascript"
        | b"application/javascript"
        | b"module"
        | b"text/ecmascript"
        | b"application/ecmascript" => super::js::js(content),
        b"application/json" | b"application/ld+json" | b"importmap" | b"speculationrules" => {
            super::json::json(content)
        }
        _ => None,
    }
}

/// The value of attribute `name` in a (lowercased) start tag.
fn attr(tag: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut i = 1;
    // Skip the tag name.
    while i < tag.len() && tag[i].is_ascii_alphanumeric() {
        i += 1;
    }
    while i < tag.len() {
        while i < tag.len() && (tag[i].is_ascii_whitespace() || tag[i] == b'/') {
            i += 1;
        }
        let n0 = i;
        while i < tag.len()
            && !matches!(tag[i], b'=' | b'>' | b'/')
            && !tag[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let n = &tag[n0..i];
        if n.is_empty() {
            return None;
        }
        while i < tag.len() && tag[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if tag.get(i) == Some(&b'=') {
            i += 1;
            while i < tag.len() && tag[i].is_ascii_whitespace() {
                i += 1;
            }
            match tag.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let v0 = i + 1;
                    let v1 = tag[v0..].iter().position(|&c| c == q)? + v0;
                    value.extend_from_slice(&tag[v0..v1]);
                    i = v1 + 1;
                }
                _ => {
                    let v0 = i;
                    while i < tag.len() && !tag[i].is_ascii_whitespace() && tag[i] != b'>' {
                        i += 1;
                    }
                    value.extend_from_slice(&tag[v0..i]);
                }
            }
        }
        if n == name {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn m(s: &str) -> Option<String> {
        html(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn collapses_text_and_minifies_inline_code() {
        let src = "<!doctype html>\n<html>\n  <head>\n    <title> Hi </title>\n    <style> p { color : red ; } </style>\n  </head>\n  <body>\n    <!-- a comment -->\n    <p class=\"a  b\">  hello   world  </p>\n    <pre>  keep\n   this </pre>\n    <script> var  answer = 40 + 2 ; </script>\n    <script type=\"application/ld+json\"> { \"a\" : 1 } </script>\n    <script type=\"text/template\"> <b>  x  </b> </script>\n  </body>\n</html>\n";
        let want = "<!doctype html>\n<html>\n<head>\n<title> Hi </title>\n<style>p{color:red;}</style>\n</head>\n<body>\n<p class=\"a  b\"> hello world </p>\n<pre>  keep\n   this </pre>\n<script>var answer=40+2;</script>\n<script type=\"application/ld+json\">{\"a\":1}</script>\n<script type=\"text/template\"> <b>  x  </b> </script>\n</body>\n</html>";
        assert_eq!(m(src).as_deref(), Some(want));
        assert_eq!(
            m("<p>a <!-- x --> b</p><!--[if IE]>x<![endif]-->").as_deref(),
            Some("<p>a b</p><!--[if IE]>x<![endif]-->")
        );
        assert_eq!(
            m("<a title='1 > 0'   href=x>  y</a>").as_deref(),
            Some("<a title='1 > 0'   href=x> y</a>")
        );
    }

    #[test]
    fn broken_inline_code_is_kept_and_broken_documents_declined() {
        assert_eq!(
            m("<p>  x  </p><script>function ( {</script>").as_deref(),
            Some("<p> x </p><script>function ( {</script>")
        );
        for src in [
            "<html><body><p>hi<!-- never closed",
            "<html><script>var x = 1;",
            "<html><style>p{}",
            "<div class=\"a   ",
            "<pre> x",
        ] {
            assert_eq!(m(src), None, "{src:?}");
        }
        assert_eq!(html(b"\xff<p>  x  </p>"), None);
    }
}
