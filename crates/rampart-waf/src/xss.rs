//! XSS detector in the manner of libinjection's HTML5 check: a single pass over the value
//! finds the places a browser would start executing script: a tag that runs script or loads
//! content (`<script`, `<iframe`, `<svg`, ...), any tag carrying an event-handler attribute
//! (`on...=`), a `javascript:`/`vbscript:`/`data:text/html` URL, CSS expressions, and an
//! attribute context broken out of (`" onmouseover=`). The value should be decoded first
//! (URL, HTML entities, JS/CSS escapes), which the rules do with transformations.

const DANGEROUS_TAGS: &[&str] = &[
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "svg",
    "math",
    "meta",
    "base",
    "link",
    "style",
    "xml",
    "import",
    "isindex",
    "form",
    "xss",
    "vmlframe",
    "bgsound",
    "layer",
    "ilayer",
    "template",
    "portal",
    "animate",
    "set",
    "handler",
    "listener",
    "xmp",
    "plaintext",
    "noscript",
    "html",
    "body",
    "img",
    "image",
    "video",
    "audio",
    "source",
    "input",
    "button",
    "select",
    "textarea",
    "details",
    "marquee",
    "div",
    "a",
    "table",
    "td",
    "span",
    "p",
    "br",
    "title",
    "head",
    "keygen",
    "blink",
    "font",
    "embed",
    "comment",
    "xmp",
];

const ALWAYS_BAD_TAGS: &[&str] = &[
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "meta", "base", "xml",
    "import", "isindex", "vmlframe", "bgsound", "layer", "ilayer", "svg", "math", "portal",
    "handler", "listener", "xss", "style", "link",
];

const URL_SCHEMES: &[&[u8]] = &[
    b"javascript:",
    b"vbscript:",
    b"livescript:",
    b"mocha:",
    b"data:text/html",
    b"data:application/x-javascript",
    b"data:image/svg",
];

fn lower(v: &[u8]) -> Vec<u8> {
    v.to_ascii_lowercase()
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

const LT: u8 = 1;
const COLON: u8 = 2;
const QUOTE: u8 = 4;
const PAREN_AT: u8 = 8;

/// The [`detect`] gate's bytes: `<`, `:`, quotes (`"` `'` `` ` ``), `(` and `@`.
const MARKS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'<' as usize] = LT;
    t[b':' as usize] = COLON;
    t[b'"' as usize] = QUOTE;
    t[b'\'' as usize] = QUOTE;
    t[b'`' as usize] = QUOTE;
    t[b'(' as usize] = PAREN_AT;
    t[b'@' as usize] = PAREN_AT;
    t
};

/// Does the value contain something a browser would run?
pub fn detect(v: &[u8]) -> bool {
    let (lt, colon, quote, paren_or_at) = if v.len() < 64 {
        // Short values: one pass over a byte table (seven `memchr` calls cost more).
        let f = v.iter().fold(0u8, |f, c| f | MARKS[usize::from(*c)]);
        (
            f & LT != 0,
            f & COLON != 0,
            f & QUOTE != 0,
            f & PAREN_AT != 0,
        )
    } else {
        let has = |b: u8| memchr::memchr(b, v).is_some();
        (
            has(b'<'),
            has(b':'),
            has(b'"') || has(b'\'') || has(b'`'),
            has(b'(') || has(b'@'),
        )
    };
    if !lt && !colon && !quote && !paren_or_at {
        return false;
    }
    let l = lower(v);
    (lt && tag_check(&l))
        || black_attr(&l)
        || (colon && scheme_check(&l))
        || (quote && attr_breakout(&l))
        || ((colon || paren_or_at) && css_check(&l))
}

fn tag_check(l: &[u8]) -> bool {
    let mut i = 0;
    while i < l.len() {
        if l[i] != b'<' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        // `</script`, `<!--`, `<?import`, `<%`
        if j < l.len() && matches!(l[j], b'/' | b'?' | b'!') {
            j += 1;
        }
        let start = j;
        while j < l.len()
            && (l[j].is_ascii_alphanumeric() || l[j] == b':' || l[j] == b'-' || l[j] == b'_')
        {
            j += 1;
        }
        if j == start {
            i += 1;
            continue;
        }
        let name = &l[start..j];
        let name = name.rsplit(|c| *c == b':').next().unwrap_or(name);
        let closing = l[i + 1] == b'/';
        // The tag name must end with a separator a browser accepts.
        let ends = j >= l.len()
            || matches!(
                l[j],
                b' ' | b'/' | b'>' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b | 0
            );
        if !ends {
            i = j;
            continue;
        }
        if !closing && ALWAYS_BAD_TAGS.iter().any(|t| t.as_bytes() == name) {
            return true;
        }
        if closing
            && (name == b"script" || name == b"style" || name == b"title" || name == b"textarea")
            && j < l.len()
        {
            return true;
        }
        if !closing && (DANGEROUS_TAGS.iter().any(|t| t.as_bytes() == name) || !name.is_empty()) {
            // Attributes up to `>` (or the end of the value).
            let end = l[j..]
                .iter()
                .position(|c| *c == b'>')
                .map_or(l.len(), |p| j + p);
            let attrs = &l[j..end];
            if has_event_handler(attrs) || scheme_check(attrs) || attrs_dangerous(name, attrs) {
                return true;
            }
        }
        i = j;
    }
    false
}

fn attrs_dangerous(name: &[u8], attrs: &[u8]) -> bool {
    // <img src=x ...> alone is harmless; these are not.
    (name == b"a" || name == b"form" || name == b"button" || name == b"input")
        && (contains(attrs, b"formaction") || contains(attrs, b"xlink:href"))
        || contains(attrs, b"style")
            && (contains(attrs, b"expression(")
                || contains(attrs, b"url(") && contains(attrs, b"script"))
        || contains(attrs, b"srcdoc")
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    crate::transform::find(h, n).is_some()
}

/// `on<letters>` followed (after optional spaces) by `=`, preceded by a separator.
fn has_event_handler(a: &[u8]) -> bool {
    let mut i = 0;
    while i + 2 < a.len() {
        if a[i] == b'o' && a[i + 1] == b'n' {
            let sep = i == 0
                || matches!(
                    a[i - 1],
                    b' ' | b'/'
                        | b'"'
                        | b'\''
                        | b'\t'
                        | b'\n'
                        | b'\r'
                        | 0x0c
                        | 0x0b
                        | b';'
                        | b','
                        | b'`'
                        | 0
                );
            if sep {
                let mut j = i + 2;
                while j < a.len() && a[j].is_ascii_alphabetic() {
                    j += 1;
                }
                if j > i + 3 {
                    while j < a.len() && is_space(a[j]) {
                        j += 1;
                    }
                    if a.get(j) == Some(&b'=') {
                        return true;
                    }
                }
            }
        }
        i += 1;
    }
    false
}

/// `javascript:` etc., ignoring whitespace and control characters inside the scheme.
fn scheme_check(l: &[u8]) -> bool {
    let squeezed: Vec<u8> = l
        .iter()
        .copied()
        .filter(|c| !is_space(*c) && *c >= 0x20)
        .collect();
    URL_SCHEMES.iter().any(|s| {
        let mut start = 0;
        while let Some(p) = crate::transform::find(&squeezed[start..], s) {
            let at = start + p;
            // Must start a URL: beginning, after a quote, `=`, `(`, or a space in the original.
            let before = if at == 0 {
                None
            } else {
                Some(squeezed[at - 1])
            };
            let ok = before.is_none_or(|b| !b.is_ascii_alphanumeric());
            // and be followed by something.
            if ok && at + s.len() < squeezed.len() {
                return true;
            }
            start = at + 1;
        }
        false
    })
}

/// A quote (or `>`) closing an attribute, then an event handler or a new tag.
fn attr_breakout(l: &[u8]) -> bool {
    for (i, &c) in l.iter().enumerate() {
        if matches!(c, b'"' | b'\'' | b'`') {
            let rest = &l[i + 1..];
            let trimmed_start = rest
                .iter()
                .position(|c| !is_space(*c) && *c != b'/')
                .unwrap_or(rest.len());
            let r = &rest[trimmed_start..];
            if (trimmed_start > 0 || r.starts_with(b"on")) && has_event_handler_at_start(r) {
                return true;
            }
        }
    }
    false
}

/// A value read as an unquoted attribute value (libinjection's no-quote context): every
/// word is an attribute name, and `style=` there runs CSS. A `style` (or `formaction`) word
/// directly followed by `=`, at the start, after whitespace or after a quote.
fn black_attr(l: &[u8]) -> bool {
    const NAMES: [&[u8]; 2] = [b"style", b"formaction"];
    let mut start = 0;
    while let Some(p) = memchr::memchr(b'=', &l[start..]) {
        let eq = start + p;
        let mut end = eq;
        while end > 0 && is_space(l[end - 1]) {
            end -= 1;
        }
        for n in NAMES {
            if end >= n.len() && &l[end - n.len()..end] == n {
                let before = end - n.len();
                if before == 0
                    || is_space(l[before - 1])
                    || matches!(l[before - 1], b'"' | b'\'' | b'`')
                {
                    return true;
                }
            }
        }
        start = eq + 1;
    }
    false
}

fn has_event_handler_at_start(r: &[u8]) -> bool {
    if !r.starts_with(b"on") {
        return false;
    }
    let mut j = 2;
    while j < r.len() && r[j].is_ascii_alphabetic() {
        j += 1;
    }
    if j <= 3 {
        return false;
    }
    while j < r.len() && is_space(r[j]) {
        j += 1;
    }
    r.get(j) == Some(&b'=')
}

fn css_check(l: &[u8]) -> bool {
    let squeezed: Vec<u8> = l.iter().copied().filter(|c| !is_space(*c)).collect();
    contains(&squeezed, b"expression(")
        && (contains(&squeezed, b"style") || contains(&squeezed, b":expression("))
        || contains(&squeezed, b"-moz-binding:")
        || contains(&squeezed, b"behavior:url(")
        || contains(&squeezed, b"@import")
            && (contains(&squeezed, b"url(")
                || contains(&squeezed, b"\"")
                || contains(&squeezed, b"'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks() {
        for a in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "\"><svg/onload=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "java\tscript:alert(1)",
            "\" onmouseover=\"alert(1)",
            "<iframe src=//evil>",
            "<div style=\"width: expression(alert(1));\">",
            "<body onload=alert(1)>",
            "<scr<script>ipt>",
            "<IMG SRC=\"jav\tascript:alert(1)\">",
            "<?import namespace=\"x\" implementation=\"http://x/x.htc\">",
            "<details open ontoggle=alert(1)>",
            "style=color:red",
            "div style=\"x",
            "x' style=background:url(a)",
        ] {
            assert!(detect(a.as_bytes()), "missed {a:?}");
        }
    }

    /// The byte-table gate of short values and the `memchr` gate of long ones agree.
    #[test]
    fn short_and_long_gates_agree() {
        for v in [
            &b"<script>alert(1)</script>"[..],
            b"javascript:alert(1)",
            b"\" onmouseover=alert(1) x=\"",
            b"x' style='x:expression(alert(1))",
            b"plain text value",
            b"a@b.c",
        ] {
            let mut long = v.to_vec();
            long.extend(std::iter::repeat_n(b' ', 100));
            assert_eq!(detect(v), detect(&long), "{:?}", String::from_utf8_lossy(v));
        }
        assert!(detect(b"<script>alert(1)</script>"));
        assert!(!detect(b"plain text value"));
    }

    #[test]
    fn benign() {
        for b in [
            "hello <b>world</b>",
            "a < b and c > d",
            "I <3 <3",
            "mailto:x@y.z",
            "see https://example.com/?a=1&b=2",
            "one=two",
            "the online event",
            "x = \"onion\"",
            "<p>paragraph</p>",
            "1 <2",
            "lifestyle=healthy",
            "stylesheet",
        ] {
            assert!(!detect(b.as_bytes()), "false positive {b:?}");
        }
    }
}
