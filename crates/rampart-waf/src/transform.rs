//! Transformations: pure functions `&[u8] -> Vec<u8>` applied, in order, to a target value
//! before an operator sees it (ModSecurity's `t:` actions).
//!
//! Every transformation is total: malformed input (a bad `%`-escape, an odd hex string, a
//! truncated entity) is kept as it is, never an error or a panic, and the output is never more
//! than a small constant factor larger than the input.

use std::borrow::Cow;

/// One transformation. Names follow ModSecurity's (`t:urlDecodeUni`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// `%HH` and `+` decoding.
    UrlDecode,
    /// `%HH`, `%uXXXX` (as UTF-8, with full-width ASCII folded) and `+` decoding.
    UrlDecodeUni,
    /// HTML entities: `&lt;`, `&#60;`, `&#x3c;` (with or without the `;`).
    HtmlEntityDecode,
    /// JavaScript escapes: `\xHH`, `\uHHHH`, `\n`, `\OOO`, ...
    JsDecode,
    /// CSS escapes: `\HH..` (up to 6 hex digits) and `\c`.
    CssDecode,
    /// ASCII lowercase.
    Lowercase,
    /// ASCII uppercase.
    Uppercase,
    /// Runs of whitespace become one space.
    CompressWhitespace,
    /// All whitespace removed.
    RemoveWhitespace,
    /// NUL bytes removed.
    RemoveNulls,
    /// NUL bytes become spaces.
    ReplaceNulls,
    /// `/* */`, `<!-- -->`, `--` and `#` comments removed.
    RemoveComments,
    /// `/* */` comments become one space.
    ReplaceComments,
    /// The comment characters `/*`, `*/`, `<!--`, `-->`, `--`, `#` removed.
    RemoveCommentsChar,
    /// `/./`, `//` and `dir/../` resolved.
    NormalisePath,
    /// As [`Transform::NormalisePath`] after turning `\` into `/`.
    NormalisePathWin,
    /// Base64 decoding (stops at the first invalid character).
    Base64Decode,
    /// Base64 decoding that skips invalid characters.
    Base64DecodeExt,
    /// Hex decoding (`414243` -> `ABC`); input with non-hex characters is kept.
    HexDecode,
    /// SQL hex literals `0x414243` decoded in place.
    SqlHexDecode,
    /// Windows/Unix command-line normalisation (`\ " ' ^` removed, `,;` to space, spaces
    /// compressed, spaces before `/` and `(` removed, lowercase).
    CmdLine,
    /// UTF-8 multi-byte sequences to `%uXXXX`.
    Utf8ToUnicode,
    /// The value's length in bytes, as decimal text.
    Length,
    /// Leading and trailing whitespace removed.
    Trim,
    /// Leading whitespace removed.
    TrimLeft,
    /// Trailing whitespace removed.
    TrimRight,
    /// C / ANSI escape sequences (`\n`, `\x41`, `\101`) decoded.
    EscapeSeqDecode,
    /// Rampart extension (not in ModSecurity): shell-evasion normalisation for command
    /// injection rules. Like `cmdLine` it removes `\ " ' ^` and lowercases, but it keeps the
    /// command separators (`;` `|` `&` newlines) and whitespace; `$IFS` / `${IFS}` become a
    /// space, `$SHELL` becomes `sh`, other simple expansions (`$x`, `${x}`, `$@`, `$1`) are
    /// dropped (an undefined variable expands to nothing: `c$@at` runs `cat`). `$(` and `${`
    /// with anything else are kept.
    ShellNormalise,
}

impl Transform {
    /// Parse a ModSecurity transformation name (case-insensitive). `none` is handled by the
    /// caller (it clears the list). `Err` carries the unknown name.
    pub fn from_name(name: &str) -> Result<Self, String> {
        use Transform::*;
        Ok(match name.to_ascii_lowercase().as_str() {
            "urldecode" => UrlDecode,
            "urldecodeuni" => UrlDecodeUni,
            "htmlentitydecode" => HtmlEntityDecode,
            "jsdecode" => JsDecode,
            "cssdecode" => CssDecode,
            "lowercase" => Lowercase,
            "uppercase" => Uppercase,
            "compresswhitespace" => CompressWhitespace,
            "removewhitespace" => RemoveWhitespace,
            "removenulls" => RemoveNulls,
            "replacenulls" => ReplaceNulls,
            "removecomments" => RemoveComments,
            "replacecomments" => ReplaceComments,
            "removecommentschar" => RemoveCommentsChar,
            "normalisepath" | "normalizepath" => NormalisePath,
            "normalisepathwin" | "normalizepathwin" => NormalisePathWin,
            "base64decode" => Base64Decode,
            "base64decodeext" => Base64DecodeExt,
            "hexdecode" => HexDecode,
            "sqlhexdecode" => SqlHexDecode,
            "cmdline" => CmdLine,
            "utf8tounicode" => Utf8ToUnicode,
            "length" => Length,
            "trim" => Trim,
            "trimleft" => TrimLeft,
            "trimright" => TrimRight,
            "escapeseqdecode" => EscapeSeqDecode,
            "shellnormalise" | "shellnormalize" => ShellNormalise,
            other => return Err(other.to_string()),
        })
    }

    /// Apply to a value.
    pub fn apply(self, v: &[u8]) -> Vec<u8> {
        use Transform::*;
        match self {
            UrlDecode => url_decode(v, false),
            UrlDecodeUni => url_decode(v, true),
            HtmlEntityDecode => html_entity_decode(v),
            JsDecode => js_decode(v),
            CssDecode => css_decode(v),
            Lowercase => v.to_ascii_lowercase(),
            Uppercase => v.to_ascii_uppercase(),
            CompressWhitespace => compress_whitespace(v),
            RemoveWhitespace => v.iter().copied().filter(|c| !is_space(*c)).collect(),
            RemoveNulls => v.iter().copied().filter(|c| *c != 0).collect(),
            ReplaceNulls => v.iter().map(|c| if *c == 0 { b' ' } else { *c }).collect(),
            RemoveComments => remove_comments(v, false),
            ReplaceComments => remove_comments(v, true),
            RemoveCommentsChar => remove_comments_char(v),
            NormalisePath => normalise_path(v, false),
            NormalisePathWin => normalise_path(v, true),
            Base64Decode => base64_decode(v, false),
            Base64DecodeExt => base64_decode(v, true),
            HexDecode => hex_decode(v),
            SqlHexDecode => sql_hex_decode(v),
            CmdLine => cmd_line(v),
            Utf8ToUnicode => utf8_to_unicode(v),
            Length => v.len().to_string().into_bytes(),
            Trim => trim_end(trim_start(v)).to_vec(),
            TrimLeft => trim_start(v).to_vec(),
            TrimRight => trim_end(v).to_vec(),
            EscapeSeqDecode => escape_seq_decode(v),
            ShellNormalise => shell_normalise(v),
        }
    }
}

impl Transform {
    /// `true` when the transformation cannot change this value (a cheap pre-check that
    /// avoids copying the common, clean value).
    pub fn is_noop_for(self, v: &[u8]) -> bool {
        use Transform::*;
        let has = |b: u8| memchr::memchr(b, v).is_some();
        match self {
            UrlDecode | UrlDecodeUni => !has(b'%') && !has(b'+'),
            HtmlEntityDecode => !has(b'&'),
            JsDecode | CssDecode | EscapeSeqDecode => !has(b'\\'),
            Lowercase => !v.iter().any(u8::is_ascii_uppercase),
            Uppercase => !v.iter().any(u8::is_ascii_lowercase),
            RemoveNulls | ReplaceNulls => !has(0),
            Utf8ToUnicode => v.is_ascii(),
            RemoveComments | RemoveCommentsChar => {
                !has(b'#') && !has(b'*') && !has(b'<') && memchr::memmem::find(v, b"--").is_none()
            }
            ReplaceComments => !has(b'*'),
            RemoveWhitespace | CompressWhitespace | Trim | TrimLeft | TrimRight => {
                !v.iter().any(|c| is_space(*c))
            }
            SqlHexDecode => {
                memchr::memmem::find(v, b"0x").is_none() && memchr::memmem::find(v, b"0X").is_none()
            }
            ShellNormalise => !v
                .iter()
                .any(|c| c.is_ascii_uppercase() || matches!(c, b'\\' | b'\'' | b'"' | b'^' | b'$')),
            _ => false,
        }
    }
}

/// Feature bits of a value (one pass), for [`Transform::is_noop_given`].
pub fn features(v: &[u8]) -> u32 {
    let mut f = 0u32;
    let mut prev = 0u8;
    for &c in v {
        let t = FEATURE_TABLE[usize::from(c)];
        f |= t;
        if t & F_PAIR != 0 {
            match c {
                b'x' | b'X' if prev == b'0' => f |= F_HEX,
                // `//`, `./`, `/.`: a path normalisation may change the value.
                b'/' if prev == b'/' || prev == b'.' => f |= F_PATHSEG,
                b'.' if prev == b'/' => f |= F_PATHSEG,
                // A comment needs `--` (`<!--` and `-->` hold it too); one dash changes
                // nothing (`rampart-bench`, dates, UUIDs).
                b'-' if prev == b'-' => f |= F_DASH,
                _ => {}
            }
        }
        prev = c;
    }
    if v.first() == Some(&b'.') {
        // A leading `.` or `..` segment.
        f |= F_PATHSEG;
    }
    f & !F_PAIR
}

/// The single-byte [`features`] of each byte, plus [`F_PAIR`] for the bytes that may end a
/// two-byte feature (`0x`, `//`, `./`, `/.`).
const FEATURE_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8; // i < 256: exact
        t[i] = match c {
            b'%' => F_PERCENT,
            b'+' => F_PLUS,
            b'&' => F_AMP,
            b'\\' => F_BACKSLASH,
            b'A'..=b'Z' => F_UPPER,
            b'a'..=b'z' => F_LOWER,
            0 => F_NUL,
            b'#' => F_HASH,
            b'*' => F_STAR,
            b'<' => F_LT,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 => F_SPACE,
            0x80..=0xff => F_NONASCII,
            b'\'' | b'"' => F_QUOTE,
            b'$' | b'^' => F_SHELL,
            _ => 0,
        };
        if matches!(c, b'x' | b'X' | b'/' | b'.' | b'-') {
            t[i] |= F_PAIR;
        }
        i += 1;
    }
    t
};

/// Internal to [`features`]: the byte may end a two-byte feature.
const F_PAIR: u32 = 1 << 30;
const F_PERCENT: u32 = 1;
const F_PLUS: u32 = 1 << 1;
const F_AMP: u32 = 1 << 2;
const F_BACKSLASH: u32 = 1 << 3;
const F_UPPER: u32 = 1 << 4;
const F_LOWER: u32 = 1 << 5;
const F_NUL: u32 = 1 << 6;
const F_HASH: u32 = 1 << 7;
const F_STAR: u32 = 1 << 8;
const F_DASH: u32 = 1 << 9;
const F_LT: u32 = 1 << 10;
const F_SPACE: u32 = 1 << 11;
const F_NONASCII: u32 = 1 << 12;
const F_HEX: u32 = 1 << 13;
const F_QUOTE: u32 = 1 << 14;
const F_SHELL: u32 = 1 << 15;
const F_PATHSEG: u32 = 1 << 16;

/// Never set by [`features`]: a mask holding it fails the tests below for every value.
pub const F_ALWAYS: u32 = 1 << 31;

impl Transform {
    /// The [`features`] bits whose presence lets this transformation change a value (its
    /// absence makes it a no-op); [`F_ALWAYS`] when it may change any value.
    pub fn noop_mask(self) -> u32 {
        use Transform::*;
        match self {
            UrlDecode | UrlDecodeUni => F_PERCENT | F_PLUS,
            HtmlEntityDecode => F_AMP,
            JsDecode | CssDecode | EscapeSeqDecode => F_BACKSLASH,
            Lowercase => F_UPPER,
            Uppercase => F_LOWER,
            RemoveNulls | ReplaceNulls => F_NUL,
            Utf8ToUnicode => F_NONASCII,
            RemoveComments | RemoveCommentsChar => F_HASH | F_STAR | F_DASH | F_LT,
            ReplaceComments => F_STAR,
            RemoveWhitespace | CompressWhitespace | Trim | TrimLeft | TrimRight => F_SPACE,
            SqlHexDecode => F_HEX,
            ShellNormalise => F_UPPER | F_BACKSLASH | F_QUOTE | F_SHELL,
            // Without `//`, a `.` / `..` segment or (Windows) `\\`, every segment is kept as it
            // is and the slashes are rebuilt as they were.
            NormalisePath => F_PATHSEG,
            NormalisePathWin => F_PATHSEG | F_BACKSLASH,
            _ => F_ALWAYS,
        }
    }

    /// The [`features`] bits whose presence lets this transformation change more than ASCII
    /// case; [`F_ALWAYS`] when it may change any value beyond case.
    pub fn case_mask(self) -> u32 {
        use Transform::*;
        match self {
            Lowercase | Uppercase => 0,
            ShellNormalise => F_BACKSLASH | F_QUOTE | F_SHELL,
            _ => F_ALWAYS,
        }
    }

    /// As [`Transform::is_noop_for`], from the value's [`features`].
    pub fn is_noop_given(self, f: u32) -> bool {
        (f | F_ALWAYS) & self.noop_mask() == 0
    }

    /// `true` when, for a value with these [`features`], the transformation changes nothing
    /// but ASCII case (so a case-insensitive literal scan can skip it).
    pub fn only_case_given(self, f: u32) -> bool {
        (f | F_ALWAYS) & self.case_mask() == 0
    }
}

/// Apply a chain to a value whose [`features`] are known; borrows while nothing changes.
pub fn apply_all_given<'a>(chain: &[Transform], v: &'a [u8], f: u32) -> Cow<'a, [u8]> {
    let mut i = 0;
    while i < chain.len() && chain[i].is_noop_given(f) {
        i += 1;
    }
    if i == chain.len() {
        return Cow::Borrowed(v);
    }
    let mut cur: Vec<u8> = chain[i].apply(v);
    for t in &chain[i + 1..] {
        if !t.is_noop_for(&cur) {
            cur = t.apply(&cur);
        }
    }
    Cow::Owned(cur)
}

/// Apply a chain of transformations. Borrows while nothing changes.
pub fn apply_all<'a>(chain: &[Transform], v: &'a [u8]) -> Cow<'a, [u8]> {
    let mut cur: Cow<'a, [u8]> = Cow::Borrowed(v);
    for t in chain {
        if t.is_noop_for(&cur) {
            continue;
        }
        cur = Cow::Owned(t.apply(&cur));
    }
    cur
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

fn trim_start(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|c| is_space(**c)).count();
    &v[n..]
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v.iter().rev().take_while(|c| is_space(**c)).count();
    &v[..v.len() - n]
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_at(v: &[u8], i: usize, n: usize) -> Option<u32> {
    if i + n > v.len() {
        return None;
    }
    let mut acc = 0u32;
    for &c in &v[i..i + n] {
        acc = acc * 16 + u32::from(hexval(c)?);
    }
    Some(acc)
}

fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    // Full-width ASCII (U+FF01..U+FF5E) folds to ASCII, as IIS does.
    let cp = if (0xff01..=0xff5e).contains(&cp) {
        cp - 0xff00 + 0x20
    } else {
        cp
    };
    match char::from_u32(cp) {
        Some(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        None => out.push(b'?'),
    }
}

/// URL decoding; `uni` adds `%uXXXX`.
pub fn url_decode(v: &[u8], uni: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if c == b'%' {
            if uni && i + 1 < v.len() && (v[i + 1] == b'u' || v[i + 1] == b'U') {
                if let Some(cp) = hex_at(v, i + 2, 4) {
                    push_code_point(&mut out, cp);
                    i += 6;
                    continue;
                }
            }
            if let Some(b) = hex_at(v, i + 1, 2) {
                out.push(b as u8);
                i += 3;
                continue;
            }
            out.push(c);
        } else if c == b'+' {
            out.push(b' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn named_entity(name: &[u8]) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_slice() {
        b"lt" => 0x3c,
        b"gt" => 0x3e,
        b"amp" => 0x26,
        b"quot" => 0x22,
        b"apos" => 0x27,
        b"nbsp" => 0xa0,
        b"tab" => 0x09,
        b"newline" => 0x0a,
        b"colon" => 0x3a,
        b"lpar" => 0x28,
        b"rpar" => 0x29,
        b"sol" => 0x2f,
        b"bsol" => 0x5c,
        b"semi" => 0x3b,
        b"equals" => 0x3d,
        b"comma" => 0x2c,
        b"period" => 0x2e,
        b"excl" => 0x21,
        b"grave" => 0x60,
        b"num" => 0x23,
        b"lowbar" => 0x5f,
        b"plus" => 0x2b,
        b"lsqb" | b"lbrack" => 0x5b,
        b"rsqb" | b"rbrack" => 0x5d,
        b"lcub" | b"lbrace" => 0x7b,
        b"rcub" | b"rbrace" => 0x7d,
        _ => return None,
    })
}

/// HTML entity decoding.
pub fn html_entity_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'&' {
            if let Some((cp, used)) = entity_at(&v[i + 1..]) {
                if cp == 0xa0 {
                    out.push(b' ');
                } else if cp < 0x80 {
                    out.push(cp as u8);
                } else {
                    push_code_point(&mut out, cp);
                }
                i += 1 + used;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn entity_at(v: &[u8]) -> Option<(u32, usize)> {
    if v.first() == Some(&b'#') {
        let (hex, start) = match v.get(1) {
            Some(b'x' | b'X') => (true, 2),
            _ => (false, 1),
        };
        let mut j = start;
        let mut acc: u32 = 0;
        // Any number of digits (leading zeros included), as ModSecurity reads them.
        while j < v.len() {
            let d = if hex {
                hexval(v[j]).map(u32::from)
            } else if v[j].is_ascii_digit() {
                Some(u32::from(v[j] - b'0'))
            } else {
                None
            };
            match d {
                Some(d) => {
                    acc = acc
                        .saturating_mul(if hex { 16 } else { 10 })
                        .saturating_add(d)
                }
                None => break,
            }
            j += 1;
        }
        if j == start {
            return None;
        }
        if v.get(j) == Some(&b';') {
            j += 1;
        }
        return Some((acc, j));
    }
    let mut j = 0;
    while j < v.len() && j < 10 && v[j].is_ascii_alphanumeric() {
        j += 1;
    }
    if j == 0 {
        return None;
    }
    let cp = named_entity(&v[..j])?;
    if v.get(j) == Some(&b';') {
        j += 1;
    }
    Some((cp, j))
}

/// JavaScript escape decoding.
pub fn js_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            let n = v[i + 1];
            match n {
                b'u' => {
                    if let Some(cp) = hex_at(v, i + 2, 4) {
                        push_code_point(&mut out, cp);
                        i += 6;
                        continue;
                    }
                }
                b'x' => {
                    if let Some(b) = hex_at(v, i + 2, 2) {
                        out.push(b as u8);
                        i += 4;
                        continue;
                    }
                }
                b'0'..=b'7' => {
                    let mut j = i + 1;
                    let mut acc: u32 = 0;
                    while j < v.len() && j < i + 4 && (b'0'..=b'7').contains(&v[j]) {
                        acc = acc * 8 + u32::from(v[j] - b'0');
                        j += 1;
                    }
                    out.push((acc & 0xff) as u8);
                    i = j;
                    continue;
                }
                _ => {}
            }
            out.push(match n {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                other => other,
            });
            i += 2;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

/// CSS escape decoding.
pub fn css_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            let mut j = i + 1;
            let mut acc: u32 = 0;
            while j < v.len() && j < i + 7 {
                match hexval(v[j]) {
                    Some(d) => acc = acc * 16 + u32::from(d),
                    None => break,
                }
                j += 1;
            }
            if j > i + 1 {
                if acc < 0x80 {
                    out.push(acc as u8);
                } else {
                    push_code_point(&mut out, acc);
                }
                // One whitespace after a hex escape belongs to it.
                if j < v.len() && is_space(v[j]) {
                    j += 1;
                }
                i = j;
                continue;
            }
            if v[i + 1] == b'\n' {
                i += 2;
                continue;
            }
            out.push(v[i + 1]);
            i += 2;
            continue;
        }
        if v[i] == b'\\' {
            i += 1;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn compress_whitespace(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut in_space = false;
    for &c in v {
        if is_space(c) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

fn remove_comments(v: &[u8], replace: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i..].starts_with(b"/*") {
            match find(&v[i + 2..], b"*/") {
                Some(p) => i += 2 + p + 2,
                None => i = v.len(),
            }
            if replace {
                out.push(b' ');
            }
            continue;
        }
        if !replace && v[i..].starts_with(b"<!--") {
            match find(&v[i + 4..], b"-->") {
                Some(p) => i += 4 + p + 3,
                None => i = v.len(),
            }
            continue;
        }
        if !replace && (v[i..].starts_with(b"--") || v[i] == b'#') {
            // Line comment: to the end of the line.
            match v[i..].iter().position(|c| *c == b'\n') {
                Some(p) => i += p,
                None => i = v.len(),
            }
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn remove_comments_char(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let rest = &v[i..];
        if rest.starts_with(b"<!--") {
            i += 4;
        } else if rest.starts_with(b"-->") {
            i += 3;
        } else if rest.starts_with(b"/*") || rest.starts_with(b"*/") || rest.starts_with(b"--") {
            i += 2;
        } else if rest[0] == b'#' {
            i += 1;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    out
}

/// Find `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    memchr_find(hay, needle)
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Path normalisation: collapses `//`, removes `/./`, resolves `dir/../`. A leading `../`
/// that cannot be resolved is kept (that is the attack signal).
pub fn normalise_path(v: &[u8], win: bool) -> Vec<u8> {
    let src: Vec<u8> = if win {
        v.iter()
            .map(|c| if *c == b'\\' { b'/' } else { *c })
            .collect()
    } else {
        v.to_vec()
    };
    let absolute = src.first() == Some(&b'/');
    let trailing = src.last() == Some(&b'/')
        || src.ends_with(b"/.")
        || src.ends_with(b"/..")
        || src == b"."
        || src == b"..";
    let mut segs: Vec<&[u8]> = Vec::new();
    for seg in src.split(|c| *c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if matches!(segs.last(), Some(s) if *s != b"..") {
                    segs.pop();
                } else if !absolute {
                    segs.push(seg);
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = Vec::with_capacity(src.len());
    if absolute {
        out.push(b'/');
    }
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(s);
    }
    if trailing && !segs.is_empty() {
        out.push(b'/');
    }
    out
}

fn b64val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Base64 decoding (standard and URL-safe alphabets). `ext` skips invalid characters;
/// otherwise decoding stops at the first one.
pub fn base64_decode(v: &[u8], ext: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in v {
        if c == b'=' {
            break;
        }
        match b64val(c) {
            Some(d) => {
                acc = (acc << 6) | u32::from(d);
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    out.push(((acc >> bits) & 0xff) as u8);
                }
            }
            None if ext => {}
            None => break,
        }
    }
    out
}

fn hex_decode(v: &[u8]) -> Vec<u8> {
    if !v.len().is_multiple_of(2) || !v.iter().all(u8::is_ascii_hexdigit) {
        return v.to_vec();
    }
    v.chunks(2)
        .map(|p| hexval(p[0]).unwrap_or(0) * 16 + hexval(p[1]).unwrap_or(0))
        .collect()
}

fn sql_hex_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'0'
            && matches!(v.get(i + 1), Some(b'x' | b'X'))
            && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            && v.get(i + 3).is_some_and(u8::is_ascii_hexdigit)
        {
            let mut j = i + 2;
            while j + 1 < v.len() && v[j].is_ascii_hexdigit() && v[j + 1].is_ascii_hexdigit() {
                out.push(hexval(v[j]).unwrap_or(0) * 16 + hexval(v[j + 1]).unwrap_or(0));
                j += 2;
            }
            i = j;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn cmd_line(v: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let mut space = false;
    for &c in v {
        match c {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => space = true,
            b'/' | b'(' => {
                // Spaces before `/` and `(` are dropped.
                space = false;
                out.push(c);
            }
            _ => {
                if space && !out.is_empty() {
                    out.push(b' ');
                }
                space = false;
                out.push(c.to_ascii_lowercase());
            }
        }
    }
    out
}

fn shell_normalise(v: &[u8]) -> Vec<u8> {
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match c {
            b'\\' | b'"' | b'\'' | b'^' => i += 1,
            b'$' => {
                let next = v.get(i + 1).copied().unwrap_or(0);
                let name_end = |from: usize| {
                    let mut j = from;
                    while j < v.len() && is_ident(v[j]) {
                        j += 1;
                    }
                    j
                };
                let (name, end) = if next == b'{' {
                    let j = name_end(i + 2);
                    if v.get(j) == Some(&b'}') {
                        (&v[i + 2..j], j + 1)
                    } else {
                        (&v[0..0], i)
                    }
                } else if next.is_ascii_alphabetic() || next == b'_' {
                    let j = name_end(i + 1);
                    (&v[i + 1..j], j)
                } else if matches!(next, b'@' | b'*' | b'#' | b'?' | b'!' | b'-')
                    || next.is_ascii_digit()
                {
                    (&v[i + 1..i + 2], i + 2)
                } else {
                    (&v[0..0], i)
                };
                if end == i {
                    out.push(b'$');
                    i += 1;
                } else {
                    if name.eq_ignore_ascii_case(b"ifs") {
                        out.push(b' ');
                    } else if name.eq_ignore_ascii_case(b"shell") {
                        out.extend_from_slice(b"sh");
                    }
                    i = end;
                }
            }
            _ => {
                out.push(c.to_ascii_lowercase());
                i += 1;
            }
        }
    }
    out
}

fn utf8_to_unicode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for chunk in v.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch.is_ascii() {
                out.push(ch as u8);
            } else {
                let cp = ch as u32;
                out.extend_from_slice(format!("%u{cp:04x}").as_bytes());
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

fn escape_seq_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            let n = v[i + 1];
            if n == b'x' {
                if let Some(b) = hex_at(v, i + 2, 2) {
                    out.push(b as u8);
                    i += 4;
                    continue;
                }
            } else if (b'0'..=b'7').contains(&n) {
                let mut j = i + 1;
                let mut acc: u32 = 0;
                while j < v.len() && j < i + 4 && (b'0'..=b'7').contains(&v[j]) {
                    acc = acc * 8 + u32::from(v[j] - b'0');
                    j += 1;
                }
                out.push((acc & 0xff) as u8);
                i = j;
                continue;
            }
            let mapped = match n {
                b'a' => Some(0x07),
                b'b' => Some(0x08),
                b'f' => Some(0x0c),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'v' => Some(0x0b),
                b'\\' | b'?' | b'\'' | b'"' => Some(n),
                _ => None,
            };
            if let Some(m) = mapped {
                out.push(m);
                i += 2;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transform::*;

    fn t(tr: Transform, input: &str) -> String {
        String::from_utf8_lossy(&tr.apply(input.as_bytes())).into_owned()
    }

    #[test]
    fn url_decoding() {
        assert_eq!(t(UrlDecode, "a%20b+c%2"), "a b c%2");
        assert_eq!(t(UrlDecode, "%zz%41"), "%zzA");
        assert_eq!(t(UrlDecodeUni, "%u003cscript%u003E"), "<script>");
        assert_eq!(t(UrlDecodeUni, "%uff1cx"), "<x");
        assert_eq!(t(UrlDecodeUni, "%u12"), "%u12");
    }

    #[test]
    fn html_entities() {
        assert_eq!(
            t(HtmlEntityDecode, "&lt;a&gt; &#60;&#x3C;&#x3c &quot;"),
            "<a> <<< \""
        );
        assert_eq!(t(HtmlEntityDecode, "&bogus; & &#;"), "&bogus; & &#;");
        assert_eq!(
            t(HtmlEntityDecode, "java&Tab;script&colon;"),
            "java\tscript:"
        );
    }

    #[test]
    fn js_and_css() {
        assert_eq!(t(JsDecode, r"\x3cscript\u003e\n\101\q"), "<script>\nAq");
        assert_eq!(t(CssDecode, r"\3c script\3E\\x"), "<script>\\x");
        assert_eq!(t(CssDecode, r"ja\vascript"), "javascript");
    }

    #[test]
    fn case_and_space() {
        assert_eq!(t(Lowercase, "SeLeCT"), "select");
        assert_eq!(t(Uppercase, "a"), "A");
        assert_eq!(t(CompressWhitespace, "a \t\n b  c"), "a b c");
        assert_eq!(t(RemoveWhitespace, " a b\tc "), "abc");
        assert_eq!(t(RemoveNulls, "a\0b"), "ab");
        assert_eq!(t(ReplaceNulls, "a\0b"), "a b");
        assert_eq!(t(Trim, "  x  "), "x");
        assert_eq!(t(TrimLeft, "  x "), "x ");
        assert_eq!(t(TrimRight, " x  "), " x");
    }

    #[test]
    fn comments() {
        assert_eq!(t(RemoveComments, "un/**/ion se/*x*/lect"), "union select");
        assert_eq!(t(RemoveComments, "a<!-- x -->b -- tail"), "ab ");
        assert_eq!(t(RemoveComments, "a/* open"), "a");
        assert_eq!(t(ReplaceComments, "un/**/ion"), "un ion");
        assert_eq!(t(RemoveCommentsChar, "a/*b*/c--d#e<!--f-->"), "abcdef");
    }

    #[test]
    fn paths() {
        assert_eq!(t(NormalisePath, "/a/./b//c/../d"), "/a/b/d");
        assert_eq!(t(NormalisePath, "../../etc/passwd"), "../../etc/passwd");
        assert_eq!(t(NormalisePath, "/../../etc/passwd"), "/etc/passwd");
        assert_eq!(t(NormalisePath, "a/b/"), "a/b/");
        assert_eq!(
            t(NormalisePathWin, "c:\\a\\..\\windows\\win.ini"),
            "c:/windows/win.ini"
        );
    }

    #[test]
    fn decoders() {
        assert_eq!(t(Base64Decode, "PHNjcmlwdD4="), "<script>");
        assert_eq!(t(Base64Decode, "PHNj!cmlwdD4="), "<sc");
        assert_eq!(t(Base64DecodeExt, "PHNj!cmlwdD4="), "<script>");
        assert_eq!(t(HexDecode, "414243"), "ABC");
        assert_eq!(t(HexDecode, "41424"), "41424");
        assert_eq!(t(SqlHexDecode, "select 0x41424344 x"), "select ABCD x");
        assert_eq!(t(EscapeSeqDecode, r"\x41\102\n\z"), "AB\n\\z");
    }

    #[test]
    fn cmdline_and_misc() {
        assert_eq!(
            t(CmdLine, "C^:\\wIn\"dows\\  sys'tem32 ,cmd"),
            "c:windows system32 cmd"
        );
        assert_eq!(t(CmdLine, "cat /etc/passwd"), "cat/etc/passwd");
        assert_eq!(t(CmdLine, "ping  (x)"), "ping(x)");
        assert_eq!(t(ShellNormalise, "a;W'h'o\\am$@i"), "a;whoami");
        assert_eq!(
            t(ShellNormalise, "cat${IFS}/etc/pa$1sswd|x"),
            "cat /etc/passwd|x"
        );
        assert_eq!(
            t(ShellNormalise, "sh$XX -c $SHELL ${HOME}/x"),
            "sh -c sh /x"
        );
        assert_eq!(t(ShellNormalise, "$(id) ${a:-b} $ 5"), "$(id) ${a:-b} $ 5");
        assert_eq!(t(Utf8ToUnicode, "aé"), "a%u00e9");
        assert_eq!(t(Length, "hello"), "5");
    }

    #[test]
    fn names_parse_and_chain() {
        assert_eq!(Transform::from_name("urlDecodeUni"), Ok(UrlDecodeUni));
        assert!(Transform::from_name("md5").is_err());
        let out = apply_all(&[UrlDecode, Lowercase], b"%53ELECT");
        assert_eq!(&*out, b"select");
        assert!(matches!(apply_all(&[], b"x"), Cow::Borrowed(_)));
        assert!(matches!(
            apply_all(&[UrlDecode, Lowercase, HtmlEntityDecode], b"abc"),
            Cow::Borrowed(_)
        ));
        // The no-op pre-check never disagrees with the transformation itself.
        for name in [
            "urldecodeuni",
            "htmlentitydecode",
            "jsdecode",
            "cssdecode",
            "lowercase",
            "removenulls",
            "utf8tounicode",
            "removecomments",
            "replacecomments",
            "removewhitespace",
            "compresswhitespace",
            "trim",
            "sqlhexdecode",
            "escapeseqdecode",
            "removecommentschar",
            "shellnormalise",
            "normalisepath",
            "normalisepathwin",
        ] {
            let t = Transform::from_name(name).unwrap();
            for v in [
                &b"plain text 123"[..],
                b"/1k.json",
                b"/a/b/",
                b"/",
                b"",
                b"a",
                b"a/",
                b".",
                b"..",
                b".htaccess",
                b"/a/.b",
                b"/a/b./c",
                b"a//b",
                b"/a/./b",
                b"/a/../b",
                b"../x",
                b"x/..",
                b"x/.",
                b"a\\..\\b",
                b"/a\\b",
                b"//",
                b"/...",
                b"w'h'o$1ami",
                b"Plain",
                b"a%41",
                b"A&lt;",
                b"x\\y",
                b"a/*b*/c",
                b"rampart-bench/0.1",
                b"a-b-c",
                b"-",
                b"a--b",
                b"a--",
                b"--",
                b"-->x",
                b"x-->",
                b"<!-- y -->z",
                b"a<!-b",
                b"1-- -1",
                b"a#b",
                b"x\0y",
                b"  s ",
                b"0x41",
                b"\xc3\xa9",
            ] {
                if t.is_noop_for(v) {
                    assert_eq!(t.apply(v), v, "{name} {v:?}");
                }
                if t.is_noop_given(features(v)) {
                    assert_eq!(t.apply(v), v, "{name} {v:?} (features)");
                }
            }
        }
    }

    #[test]
    fn feature_table_matches_the_plain_definition() {
        // The definition, byte by byte (as features() computed it before its table).
        fn reference(v: &[u8]) -> u32 {
            let mut f = 0u32;
            let mut prev = 0u8;
            for &c in v {
                f |= match c {
                    b'%' => F_PERCENT,
                    b'+' => F_PLUS,
                    b'&' => F_AMP,
                    b'\\' => F_BACKSLASH,
                    b'A'..=b'Z' => F_UPPER,
                    b'a'..=b'z' => F_LOWER,
                    0 => F_NUL,
                    b'#' => F_HASH,
                    b'*' => F_STAR,
                    b'-' if prev == b'-' => F_DASH,
                    b'<' => F_LT,
                    b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 => F_SPACE,
                    0x80..=0xff => F_NONASCII,
                    b'\'' | b'"' => F_QUOTE,
                    b'$' | b'^' => F_SHELL,
                    b'/' if prev == b'/' || prev == b'.' => F_PATHSEG,
                    b'.' if prev == b'/' => F_PATHSEG,
                    _ => 0,
                };
                if (c == b'x' || c == b'X') && prev == b'0' {
                    f |= F_HEX;
                }
                prev = c;
            }
            if v.first() == Some(&b'.') {
                f |= F_PATHSEG;
            }
            f
        }
        let all: Vec<u8> = (0..=255u8).collect();
        let mut samples: Vec<Vec<u8>> = vec![all.clone(), all.iter().rev().copied().collect()];
        for a in 0..=255u8 {
            for b in [b'0', b'x', b'X', b'/', b'.', b'-', b'a', 0xa0] {
                samples.push(vec![a, b]);
                samples.push(vec![b, a]);
            }
        }
        for v in &samples {
            assert_eq!(features(v), reference(v), "{v:?}");
        }
    }

    #[test]
    fn html_numeric_entities_take_any_number_of_digits() {
        // Leading zeros do not end the entity (as in ModSecurity).
        assert_eq!(html_entity_decode(b"&#x24;&#000000000000123;x}"), b"${x}");
        assert_eq!(html_entity_decode(b"&#x00000000007B;"), b"{");
        // Absurdly large values saturate instead of overflowing.
        let _ = html_entity_decode(b"&#99999999999999999999999;");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let inputs: [&[u8]; 10] = [
            b"%", b"%u", b"&#", b"\\", b"\\x", b"0x", b"&#x", b"/..", b"${", b"$",
        ];
        for i in inputs {
            for name in [
                "urldecode",
                "urldecodeuni",
                "htmlentitydecode",
                "jsdecode",
                "cssdecode",
                "removecomments",
                "normalisepathwin",
                "base64decode",
                "hexdecode",
                "sqlhexdecode",
                "cmdline",
                "escapeseqdecode",
                "shellnormalise",
            ] {
                let _ = Transform::from_name(name).map(|t| t.apply(i));
            }
        }
    }
}
