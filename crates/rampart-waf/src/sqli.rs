//! SQL-injection detector in the manner of libinjection: a single-pass SQL tokenizer turns the
//! value into typed tokens, read three ways (as is, as if it started inside a `'` string, as
//! if inside a `"` string); the token sequence (its "fingerprint") is then checked against
//! grammar patterns that only injected SQL produces: a string or number closed and followed by
//! a boolean operator and a comparison, `UNION SELECT`, stacked statements, a comment closing a
//! broken-out string, `ORDER BY n` after a literal, time-based functions, and so on.
//!
//! Linear time: one pass to tokenize (at most [`MAX_TOKENS`] tokens), a constant number of
//! passes over the tokens.

/// Tokens kept per context.
pub const MAX_TOKENS: usize = 64;

/// Token types (libinjection's letters in the fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// `s`: a string literal.
    Str,
    /// `n`: a number (or `\N`, `NULL`, `TRUE`, `FALSE`).
    Num,
    /// `1`: a bare word.
    Word,
    /// `k`: a SQL keyword.
    Keyword,
    /// `U`: `UNION`, `INTERSECT`, `EXCEPT`, `MINUS`.
    Union,
    /// `E`: a statement keyword (`SELECT`, `INSERT`, `DROP`, ...).
    Stmt,
    /// `B`: `GROUP BY`, `ORDER BY`, `HAVING`, `LIMIT`, `PROCEDURE`, `INTO`.
    Group,
    /// `t`: T-SQL control (`WAITFOR`, `DECLARE`, `EXEC`).
    Tsql,
    /// `f`: a known SQL function (followed by `(`).
    Func,
    /// `&`: `AND`, `OR`, `XOR`, `&&`, `||`.
    Logic,
    /// `o`: a comparison or arithmetic operator (also `LIKE`, `IS`, `IN`, ...).
    Op,
    /// `v`: a variable (`@x`, `@@version`).
    Var,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `;`.
    Semi,
    /// `c`: a comment.
    Comment,
}

impl Tok {
    fn letter(self) -> char {
        match self {
            Tok::Str => 's',
            Tok::Num => 'n',
            Tok::Word => '1',
            Tok::Keyword => 'k',
            Tok::Union => 'U',
            Tok::Stmt => 'E',
            Tok::Group => 'B',
            Tok::Tsql => 'T',
            Tok::Func => 'f',
            Tok::Logic => '&',
            Tok::Op => 'o',
            Tok::Var => 'v',
            Tok::LParen => '(',
            Tok::RParen => ')',
            Tok::Comma => ',',
            Tok::Semi => ';',
            Tok::Comment => 'c',
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Tok,
    text: &'a [u8],
    /// For strings: was it closed? For comments: the comment kind byte (`-`, `#`, `/`).
    closed: bool,
    /// For operators: is it a comparison?
    cmp: bool,
}

const STMT: &[&str] = &[
    "select", "insert", "update", "delete", "drop", "create", "alter", "truncate", "replace",
    "merge", "grant", "revoke", "shutdown", "rename", "handler", "load", "call",
];
const UNION: &[&str] = &["union", "intersect", "except", "minus"];
const LOGIC: &[&str] = &["and", "or", "xor"];
const OPWORDS: &[&str] = &[
    "like", "rlike", "regexp", "is", "in", "between", "sounds", "not", "div", "mod", "collate",
    "escape", "glob", "match", "against",
];
const CMPWORDS: &[&str] = &[
    "like", "rlike", "regexp", "is", "in", "between", "sounds", "glob",
];
const GROUP: &[&str] = &[
    "group",
    "order",
    "having",
    "limit",
    "procedure",
    "into",
    "offset",
];
const TSQL: &[&str] = &[
    "waitfor",
    "declare",
    "exec",
    "execute",
    "begin",
    "openrowset",
    "open",
];
const LITERAL: &[&str] = &["null", "true", "false", "unknown"];
const KEYWORDS: &[&str] = &[
    "from",
    "where",
    "as",
    "by",
    "case",
    "when",
    "then",
    "else",
    "end",
    "distinct",
    "all",
    "top",
    "values",
    "table",
    "database",
    "schema",
    "if",
    "delay",
    "set",
    "binary",
    "asc",
    "desc",
    "join",
    "inner",
    "outer",
    "left",
    "right",
    "cross",
    "natural",
    "using",
    "on",
    "exists",
    "any",
    "some",
    "into",
    "outfile",
    "dumpfile",
    "cast",
    "convert",
    "char",
    "varchar",
    "nvarchar",
    "int",
    "integer",
    "dual",
    "sysdate",
    "current_user",
    "user",
    "session_user",
    "system_user",
    "information_schema",
    "sysobjects",
    "syscolumns",
    "mysql",
    "analyse",
    "nowait",
    "with",
    "rollup",
];
const FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "extractvalue",
    "updatexml",
    "load_file",
    "concat",
    "concat_ws",
    "group_concat",
    "char",
    "chr",
    "ascii",
    "ord",
    "substring",
    "substr",
    "mid",
    "length",
    "len",
    "version",
    "database",
    "user",
    "current_user",
    "system_user",
    "schema",
    "count",
    "floor",
    "rand",
    "hex",
    "unhex",
    "md5",
    "sha1",
    "cast",
    "convert",
    "if",
    "iif",
    "ifnull",
    "isnull",
    "nullif",
    "coalesce",
    "elt",
    "make_set",
    "exp",
    "row",
    "name_const",
    "json_keys",
    "xmltype",
    "utl_inaddr",
    "dbms_pipe",
    "ctxsys",
    "sys",
    "waitfor",
    "db_name",
    "user_name",
    "host_name",
    "suser_name",
    "is_srvrolemember",
    "xp_cmdshell",
    "sp_executesql",
    "sp_password",
    "sys_eval",
    "sys_exec",
    "lower",
    "upper",
    "reverse",
    "left",
    "right",
    "trim",
    "replace",
    "instr",
    "locate",
    "position",
    "strcmp",
    "sum",
    "avg",
    "min",
    "max",
    "abs",
    "pi",
    "now",
    "sysdate",
    "randomblob",
    "sqlite_version",
    "typeof",
    "unicode",
    "nchar",
    "quotename",
    "bin",
    "oct",
    "conv",
    "regexp_substr",
    "generate_series",
    "current_database",
    "pg_read_file",
    "lo_import",
    "to_char",
    "to_number",
    "decode",
    "encode",
    "exists",
    "procedure",
    "analyse",
    "get_host_address",
    "receive_message",
    "char_length",
    "character_length",
    "octet_length",
    "ltrim",
    "rtrim",
    "space",
    "repeat",
    "lpad",
    "rpad",
    "field",
    "find_in_set",
    "export_set",
    "polygon",
    "multipoint",
    "geometrycollection",
    "linestring",
    "multilinestring",
    "multipolygon",
    "gtid_subset",
    "st_latfromgeohash",
    "st_longfromgeohash",
    "uuid",
    "connection_id",
    "last_insert_id",
    "found_rows",
    "row_count",
    "schema_name",
    "table_name",
];
const DANGER_FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "extractvalue",
    "updatexml",
    "load_file",
    "xp_cmdshell",
    "sys_eval",
    "sys_exec",
    "utl_inaddr",
    "dbms_pipe",
    "get_host_address",
    "receive_message",
    "name_const",
    "pg_read_file",
    "lo_import",
    "make_set",
    "elt",
    "gtid_subset",
    "exp",
    "polygon",
    "multipoint",
    "geometrycollection",
    "linestring",
    "json_keys",
    "xmltype",
    "randomblob",
    "st_latfromgeohash",
    "waitfor",
    "iif",
    "group_concat",
    "concat_ws",
];

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 | 0)
}

fn in_list(list: &[&str], w: &[u8]) -> bool {
    list.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(w))
}

const IN_LOGIC: u16 = 1;
const IN_UNION: u16 = 1 << 1;
const IN_STMT: u16 = 1 << 2;
const IN_GROUP: u16 = 1 << 3;
const IN_TSQL: u16 = 1 << 4;
const IN_LITERAL: u16 = 1 << 5;
const IN_OPWORDS: u16 = 1 << 6;
const IN_KEYWORDS: u16 = 1 << 7;
const IN_CMPWORDS: u16 = 1 << 8;

/// Each word list with the bit its words carry in the lookup table.
const WORD_LISTS: [(&[&str], u16); 9] = [
    (LOGIC, IN_LOGIC),
    (UNION, IN_UNION),
    (STMT, IN_STMT),
    (GROUP, IN_GROUP),
    (TSQL, IN_TSQL),
    (LITERAL, IN_LITERAL),
    (OPWORDS, IN_OPWORDS),
    (KEYWORDS, IN_KEYWORDS),
    (CMPWORDS, IN_CMPWORDS),
];

/// FNV-1a for the word table: its keys are short and fixed (a client's word is only looked
/// up, so it cannot lengthen a bucket).
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The word lists (`IN_*` bits) holding `w` (ASCII case-insensitively): one hash lookup for
/// what is `in_list` on each list.
fn word_lists(w: &[u8]) -> u16 {
    type Table = std::collections::HashMap<Vec<u8>, u16, std::hash::BuildHasherDefault<Fnv>>;
    static TABLE: std::sync::OnceLock<(usize, Table)> = std::sync::OnceLock::new();
    let (longest, table) = TABLE.get_or_init(|| {
        let mut t = Table::default();
        for (list, bit) in WORD_LISTS {
            for k in list {
                *t.entry(k.as_bytes().to_ascii_lowercase()).or_insert(0) |= bit;
            }
        }
        (t.keys().map(Vec::len).max().unwrap_or(0), t)
    });
    if w.len() > *longest {
        return 0;
    }
    let mut buf = [0u8; 32];
    let Some(lower) = buf.get_mut(..w.len()) else {
        return 0;
    };
    for (d, c) in lower.iter_mut().zip(w) {
        *d = c.to_ascii_lowercase();
    }
    table.get(&lower[..]).copied().unwrap_or(0)
}

/// Words the tokenizer splits from a number they are glued to (`1union`, `0xfor`).
const GLUED: &[&str] = &[
    "select", "order", "group", "having", "limit", "from", "where", "div", "like",
];

/// Is `w` a word the tokenizer splits from a number it follows (`1union` is a number, then
/// `union`)?
fn is_glued_keyword(w: &[u8]) -> bool {
    in_list(UNION, w) || in_list(LOGIC, w) || in_list(GLUED, w)
}

/// Pre-check byte classes: [`OTHER`], [`WORD`] (a word byte that is not a space), [`PAIR`]
/// (a comment or logic operator when doubled or paired: `--`, `/*`, `*/`, `||`, `&&`),
/// [`SPECIAL`] (a byte that starts a token the checks need, or quotes).
const OTHER: u8 = 0;
const WORD: u8 = 1;
const PAIR: u8 = 2;
const SPECIAL: u8 = 3;

const CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 | 0);
        if !space && (b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80) {
            t[c] = WORD;
        }
        c += 1;
    }
    let mut i = 0;
    let special = b"'\"`#;(=<>@\\";
    while i < special.len() {
        t[special[i] as usize] = SPECIAL;
        i += 1;
    }
    let pair = b"-/*|&";
    let mut i = 0;
    while i < pair.len() {
        t[pair[i] as usize] = PAIR;
        i += 1;
    }
    t
};

/// `false` proves that [`detect`] finds nothing in `v`; `true` means it must look.
///
/// Every finding of the checks needs a token of one of these kinds in the as-is reading
/// (the quoted readings need a quote in the value): a comment (`#`, `--`, `/*`, `*/`), `;`,
/// a function (needs `(`), a comparison (`=`, `<`, `>`, or a word such as `like`), `||` /
/// `&&`, or a word of the SQL word lists (`union`, `select`, `or`, `case`, ...). So a value
/// without quotes, `` ` ``, `#`, `;`, `(`, `=`, `<`, `>`, `@`, `\`, those pairs, and whose
/// words are in no list, cannot produce a finding. Words are checked as the tokenizer forms
/// them: a run of word bytes starting with a letter is one word unless it continues with a
/// dot (a dotted word is in no list: the lists have no dots); a run starting with a digit
/// is a number, and a word is split from it only when the run ends with a word the tokenizer
/// splits (`1union`, [`is_glued_keyword`]). `@` (variables) and `\` (`\N`) can also end a
/// token inside a run, so they count as special.
fn may_detect(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match CLASS[usize::from(c)] {
            SPECIAL => return true,
            PAIR => {
                if matches!(
                    (c, v.get(i + 1)),
                    (b'-', Some(b'-'))
                        | (b'/', Some(b'*'))
                        | (b'*', Some(b'/'))
                        | (b'|', Some(b'|'))
                        | (b'&', Some(b'&'))
                ) {
                    return true;
                }
                i += 1;
            }
            WORD => {
                let start = i;
                while i < v.len() && CLASS[usize::from(v[i])] == WORD {
                    i += 1;
                }
                let run = &v[start..i];
                let listed = if c.is_ascii_digit() {
                    [UNION, LOGIC, GLUED]
                        .iter()
                        .flat_map(|l| l.iter())
                        .any(|g| {
                            run.len() > g.len()
                                && run[run.len() - g.len()..].eq_ignore_ascii_case(g.as_bytes())
                        })
                } else {
                    word_lists(run) != 0
                };
                if listed {
                    return true;
                }
            }
            _ => i += 1,
        }
    }
    false
}

/// Tokenize; `quote` starts the input inside a string opened with that quote.
fn tokenize(v: &[u8], quote: Option<u8>) -> Vec<Token<'_>> {
    let mut toks: Vec<Token<'_>> = Vec::with_capacity(16);
    let mut i = 0;
    if let Some(q) = quote {
        // The input continues a string: it ends at the first unescaped quote.
        let (end, closed) = scan_string(v, 0, q);
        toks.push(Token {
            kind: Tok::Str,
            text: &v[..end.min(v.len())],
            closed,
            cmp: false,
        });
        if !closed {
            return toks;
        }
        i = end + 1;
    }
    while i < v.len() && toks.len() < MAX_TOKENS {
        let c = v[i];
        if is_space(c) {
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' | b'`' => {
                let (end, closed) = scan_string(v, i + 1, c);
                let kind = if c == b'`' { Tok::Word } else { Tok::Str };
                push(&mut toks, kind, &v[i + 1..end.min(v.len())], closed, false);
                i = if closed { end + 1 } else { v.len() };
            }
            b'#' => {
                let end = v[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(v.len(), |p| i + p);
                push(&mut toks, Tok::Comment, &v[i..end], true, false);
                i = end;
            }
            b'-' if v.get(i + 1) == Some(&b'-') => {
                let end = v[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(v.len(), |p| i + p);
                push(&mut toks, Tok::Comment, &v[i..end], true, false);
                i = end;
            }
            b'/' if v.get(i + 1) == Some(&b'*') => {
                if v.get(i + 2) == Some(&b'!') {
                    // MySQL executable comment: its content is code.
                    let mut j = i + 3;
                    while j < v.len() && v[j].is_ascii_digit() {
                        j += 1;
                    }
                    push(&mut toks, Tok::Comment, &v[i..j], true, false);
                    i = j;
                    continue;
                }
                let end =
                    crate::transform::find(&v[i + 2..], b"*/").map_or(v.len(), |p| i + 2 + p + 2);
                push(&mut toks, Tok::Comment, &v[i..end], true, false);
                i = end;
            }
            b'*' if v.get(i + 1) == Some(&b'/') => {
                push(&mut toks, Tok::Comment, &v[i..i + 2], true, false);
                i += 2;
            }
            b'(' => {
                push(&mut toks, Tok::LParen, &v[i..=i], true, false);
                i += 1;
            }
            b')' => {
                push(&mut toks, Tok::RParen, &v[i..=i], true, false);
                i += 1;
            }
            b',' => {
                push(&mut toks, Tok::Comma, &v[i..=i], true, false);
                i += 1;
            }
            b';' => {
                push(&mut toks, Tok::Semi, &v[i..=i], true, false);
                i += 1;
            }
            b'@' => {
                let mut j = i + 1;
                if v.get(j) == Some(&b'@') {
                    j += 1;
                }
                while j < v.len() && (is_word_byte(v[j]) || v[j] == b'.') {
                    j += 1;
                }
                push(&mut toks, Tok::Var, &v[i..j], true, false);
                i = j;
            }
            b'\\' if matches!(v.get(i + 1), Some(b'N')) => {
                push(&mut toks, Tok::Num, &v[i..i + 2], true, false);
                i += 2;
            }
            b'0'..=b'9' | b'.' if c != b'.' || v.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i;
                if c == b'0' && matches!(v.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
                    j += 2;
                    while j < v.len() && v[j].is_ascii_hexdigit() {
                        j += 1;
                    }
                } else {
                    while j < v.len() && (v[j].is_ascii_digit() || v[j] == b'.') {
                        j += 1;
                    }
                    if j < v.len()
                        && matches!(v[j], b'e' | b'E')
                        && v.get(j + 1)
                            .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')
                    {
                        j += 2;
                        while j < v.len() && v[j].is_ascii_digit() {
                            j += 1;
                        }
                    }
                }
                // A number glued to a SQL keyword (`1union`) is a number then the keyword;
                // glued to other letters (`70S`, `1abc`) it is a word.
                let mut k = j;
                while k < v.len() && is_word_byte(v[k]) {
                    k += 1;
                }
                let glued = &v[j..k];
                if !glued.is_empty() && is_glued_keyword(glued) {
                    push(&mut toks, Tok::Num, &v[i..j], true, false);
                } else if j < v.len() && (v[j].is_ascii_alphabetic() || v[j] == b'_') {
                    while j < v.len() && is_word_byte(v[j]) {
                        j += 1;
                    }
                    push(&mut toks, Tok::Word, &v[i..j], true, false);
                } else {
                    push(&mut toks, Tok::Num, &v[i..j], true, false);
                }
                i = j;
            }
            c if is_word_byte(c) => {
                let mut j = i;
                while j < v.len()
                    && (is_word_byte(v[j])
                        || (v[j] == b'.' && v.get(j + 1).is_some_and(|c| is_word_byte(*c))))
                {
                    j += 1;
                }
                let w = &v[i..j];
                // Next non-space byte.
                let mut k = j;
                while k < v.len() && is_space(v[k]) {
                    k += 1;
                }
                let next_paren = v.get(k) == Some(&b'(');
                let base = w.rsplit(|c| *c == b'.').next().unwrap_or(w);
                let lists = word_lists(w);
                let kind = if lists & IN_LOGIC != 0 {
                    Tok::Logic
                } else if lists & IN_UNION != 0 {
                    Tok::Union
                } else if lists & IN_STMT != 0 && (!next_paren || w.eq_ignore_ascii_case(b"select"))
                {
                    Tok::Stmt
                } else if lists & IN_GROUP != 0 {
                    Tok::Group
                } else if lists & IN_TSQL != 0 {
                    Tok::Tsql
                } else if lists & IN_LITERAL != 0 {
                    Tok::Num
                } else if lists & IN_OPWORDS != 0 {
                    Tok::Op
                } else if next_paren && in_list(FUNCS, base) {
                    Tok::Func
                } else if lists & IN_KEYWORDS != 0 {
                    Tok::Keyword
                } else {
                    Tok::Word
                };
                let kind = if next_paren && matches!(kind, Tok::Word | Tok::Keyword) {
                    Tok::Func
                } else {
                    kind
                };
                let cmp = kind == Tok::Op && lists & IN_CMPWORDS != 0;
                push(&mut toks, kind, w, true, cmp);
                i = j;
            }
            b'|' | b'&' if v.get(i + 1) == Some(&c) => {
                push(&mut toks, Tok::Logic, &v[i..i + 2], true, false);
                i += 2;
            }
            b'=' | b'<' | b'>' | b'!' | b'|' | b'&' | b'^' | b'~' | b'+' | b'-' | b'*' | b'/'
            | b'%' | b':' => {
                let mut j = i + 1;
                while j < v.len() && j < i + 3 && matches!(v[j], b'=' | b'<' | b'>' | b'!') {
                    j += 1;
                }
                let t = &v[i..j];
                let cmp = t.iter().any(|c| matches!(c, b'=' | b'<' | b'>'));
                push(&mut toks, Tok::Op, t, true, cmp);
                i = j;
            }
            _ => {
                // Other punctuation: ignored, like libinjection's "unknown" chars.
                i += 1;
            }
        }
    }
    toks
}

fn push<'a>(toks: &mut Vec<Token<'a>>, kind: Tok, text: &'a [u8], closed: bool, cmp: bool) {
    toks.push(Token {
        kind,
        text,
        closed,
        cmp,
    });
}

/// Scan a string body from `start` for the closing `q`; `''` doubling and backslash escapes
/// stay inside. Returns the index of the closing quote (or `v.len()`) and whether it closed.
fn scan_string(v: &[u8], start: usize, q: u8) -> (usize, bool) {
    let mut j = start;
    while j < v.len() {
        if v[j] == b'\\' {
            j += 2;
            continue;
        }
        if v[j] == q {
            if v.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return (j, true);
        }
        j += 1;
    }
    (v.len(), false)
}

fn is_value(t: &Token<'_>) -> bool {
    matches!(
        t.kind,
        Tok::Str | Tok::Num | Tok::Word | Tok::Var | Tok::RParen
    ) || (t.kind == Tok::Keyword
        && in_list(&["user", "current_user", "database", "sysdate"], t.text))
}

fn is_operand(t: &Token<'_>) -> bool {
    matches!(
        t.kind,
        Tok::Str | Tok::Num | Tok::Word | Tok::Var | Tok::Func | Tok::LParen
    ) || (t.kind == Tok::Keyword
        && in_list(
            &[
                "char",
                "user",
                "current_user",
                "database",
                "sysdate",
                "cast",
                "convert",
                "case",
                "exists",
                "binary",
                "if",
            ],
            t.text,
        ))
        || (t.kind == Tok::Op && t.text.eq_ignore_ascii_case(b"not"))
}

/// Check one token sequence. `ctx` is `None` for the value as is, or the quote it starts in.
fn check(toks: &[Token<'_>], ctx: Option<u8>) -> Option<&'static str> {
    // Strip comments for the structural checks, remembering where they were.
    let mut code: Vec<&Token<'_>> = Vec::with_capacity(toks.len());
    code.extend(toks.iter().filter(|t| t.kind != Tok::Comment));
    let n = code.len();
    let broke_out = ctx.is_some() && toks.first().is_some_and(|t| t.kind == Tok::Str && t.closed);
    let starts_numeric = matches!(code.first().map(|t| t.kind), Some(Tok::Num))
        || (matches!(
            code.first().map(|t| t.kind),
            Some(Tok::LParen | Tok::RParen | Tok::Op)
        ) && code.iter().take(3).any(|t| t.kind == Tok::Num));
    if ctx.is_some() && !broke_out {
        return None;
    }
    if let Some(r) = shape_checks(toks, &code, broke_out, starts_numeric) {
        return Some(r);
    }
    for i in 0..n {
        let t = code[i];
        let next = code.get(i + 1).copied();
        let next2 = code.get(i + 2).copied();
        match t.kind {
            // UNION [ALL|DISTINCT] [(] SELECT
            Tok::Union => {
                let mut j = i + 1;
                while j < n
                    && (code[j].kind == Tok::LParen
                        || (code[j].kind == Tok::Keyword
                            && in_list(&["all", "distinct"], code[j].text)))
                {
                    j += 1;
                }
                if j < n
                    && code[j].kind == Tok::Stmt
                    && code[j].text.eq_ignore_ascii_case(b"select")
                {
                    return Some("union select");
                }
            }
            // ; statement
            Tok::Semi => {
                if let Some(nx) = next {
                    let prev_value = i > 0
                        && matches!(
                            code[i - 1].kind,
                            Tok::Num | Tok::RParen | Tok::Str | Tok::Var
                        );
                    let strong_next = match nx.kind {
                        Tok::Stmt => next2.is_some_and(|x| {
                            !matches!(x.kind, Tok::Word) || nx.text.eq_ignore_ascii_case(b"select")
                        }),
                        Tok::Tsql => {
                            nx.text.eq_ignore_ascii_case(b"waitfor")
                                || nx.text.eq_ignore_ascii_case(b"declare")
                                || (nx.text.eq_ignore_ascii_case(b"exec")
                                    && next2.is_some_and(|x| {
                                        let l = x.text.to_ascii_lowercase();
                                        l.starts_with(b"xp_")
                                            || l.starts_with(b"sp_")
                                            || l.starts_with(b"master")
                                    }))
                        }
                        Tok::Func => in_list(DANGER_FUNCS, nx.text),
                        _ => false,
                    };
                    if strong_next && (broke_out || prev_value) {
                        return Some("stacked query");
                    }
                    if (nx.kind == Tok::Keyword && in_list(&["if", "set", "with"], nx.text))
                        && broke_out
                    {
                        return Some("stacked query");
                    }
                }
            }
            // (select / =(select / ,(select / ||(select
            Tok::Stmt if t.text.eq_ignore_ascii_case(b"select") => {
                let prev = if i > 0 { Some(code[i - 1]) } else { None };
                let opened = prev.is_some_and(|p| {
                    matches!(p.kind, Tok::LParen | Tok::Op | Tok::Logic | Tok::Comma)
                });
                let follows = next.is_some_and(|nx| {
                    matches!(
                        nx.kind,
                        Tok::Num
                            | Tok::Str
                            | Tok::Func
                            | Tok::Var
                            | Tok::Keyword
                            | Tok::Word
                            | Tok::LParen
                            | Tok::Op
                    )
                });
                if opened
                    && follows
                    && (broke_out
                        || starts_numeric
                        || code.iter().any(|c| {
                            c.kind == Tok::Keyword
                                && in_list(&["from", "where", "case", "dual"], c.text)
                        })
                        || next.is_some_and(|nx| nx.kind == Tok::Func))
                {
                    return Some("subquery");
                }
                if (broke_out || starts_numeric) && i + 1 < n {
                    // 1' select ... from / 1 select x
                    if code[i + 1..]
                        .iter()
                        .any(|c| c.kind == Tok::Keyword && in_list(&["from", "where"], c.text))
                        || next.is_some_and(|nx| nx.kind == Tok::Func)
                    {
                        return Some("select after literal");
                    }
                }
            }
            Tok::Stmt if i == 0 && !broke_out => {
                // A value that is a whole statement: `drop table x`, `insert into`, `delete from`.
                if let Some(nx) = next {
                    let w = t.text;
                    let hit = (w.eq_ignore_ascii_case(b"drop")
                        || w.eq_ignore_ascii_case(b"truncate")
                        || w.eq_ignore_ascii_case(b"alter")
                        || w.eq_ignore_ascii_case(b"create"))
                        && nx.kind == Tok::Keyword
                        && in_list(&["table", "database", "schema"], nx.text)
                        || w.eq_ignore_ascii_case(b"insert")
                            && nx.kind == Tok::Group
                            && nx.text.eq_ignore_ascii_case(b"into")
                        || w.eq_ignore_ascii_case(b"delete")
                            && nx.kind == Tok::Keyword
                            && nx.text.eq_ignore_ascii_case(b"from")
                            && next2.is_some_and(|x| x.kind == Tok::Word)
                        || w.eq_ignore_ascii_case(b"select")
                            && n <= 12
                            && code.iter().any(|c| {
                                c.kind == Tok::Keyword && c.text.eq_ignore_ascii_case(b"from")
                            })
                            && code.iter().any(|c| {
                                c.kind == Tok::Func
                                    || c.kind == Tok::Var
                                    || (c.kind == Tok::Op && c.text == b"*")
                            });
                    if hit {
                        return Some("statement");
                    }
                }
            }
            // value AND/OR expression
            Tok::Logic => {
                let prev = if i > 0 { Some(code[i - 1]) } else { None };
                let after_value = prev.is_some_and(is_value) || (i == 0 && broke_out);
                if !after_value {
                    continue;
                }
                // AND [(] [-]n [)] <cmp>: a numeric tautology, whatever precedes it.
                {
                    let mut j = i + 1;
                    while j < n
                        && (code[j].kind == Tok::LParen
                            || (code[j].kind == Tok::Op
                                && matches!(code[j].text, b"-" | b"+" | b"~" | b"!")))
                    {
                        j += 1;
                    }
                    if j < n && code[j].kind == Tok::Num {
                        j += 1;
                        while j < n && code[j].kind == Tok::RParen {
                            j += 1;
                        }
                        // ... with something compared against: `or 1=` alone is a fragment.
                        if j + 1 < n
                            && code[j].kind == Tok::Op
                            && code[j].cmp
                            && is_operand(code[j + 1])
                        {
                            return Some("numeric tautology");
                        }
                    }
                }
                let injected = broke_out
                    || starts_numeric
                    || prev.is_some_and(|p| p.kind == Tok::RParen)
                    || (ctx.is_none() && code.first().is_some_and(|f| f.kind == Tok::Str));
                if !injected {
                    continue;
                }
                if let Some(a) = next {
                    // AND <func>( / AND (  / AND NOT / AND <value> <cmp> <value>
                    if a.kind == Tok::Func {
                        return Some("logic function");
                    }
                    if a.kind == Tok::LParen
                        && next2.is_some_and(|b| {
                            matches!(
                                b.kind,
                                Tok::Stmt
                                    | Tok::Num
                                    | Tok::Str
                                    | Tok::Func
                                    | Tok::LParen
                                    | Tok::Var
                                    | Tok::Word
                            )
                        })
                    {
                        if code[i + 1..].iter().any(|c| {
                            (c.kind == Tok::Op && c.cmp)
                                || c.kind == Tok::Stmt
                                || c.kind == Tok::Func
                        }) {
                            return Some("logic group");
                        }
                    }
                    if is_operand(a) {
                        // Look for a comparison within the next few tokens.
                        let window = &code[i + 1..n.min(i + 16)];
                        // A symbolic comparison (`=`, `<`, ...), or a word one (`like`, `is`)
                        // with a literal on one side.
                        let sym_cmp = window.iter().any(|c| {
                            c.kind == Tok::Op && c.cmp && !c.text[0].is_ascii_alphabetic()
                        });
                        // A word comparison (`like`, `glob`) needs a value on its left.
                        let word_cmp = window.iter().enumerate().any(|(k, c)| {
                            c.kind == Tok::Op
                                && c.cmp
                                && c.text[0].is_ascii_alphabetic()
                                && k > 0
                                && matches!(
                                    window[k - 1].kind,
                                    Tok::Num | Tok::Str | Tok::RParen | Tok::Word | Tok::Var
                                )
                                && (window.get(k + 1).is_some_and(|x| {
                                    matches!(x.kind, Tok::Num | Tok::Str | Tok::LParen)
                                }) || matches!(
                                    window[k - 1].kind,
                                    Tok::Num | Tok::Str | Tok::RParen
                                ))
                        });
                        if (sym_cmp || word_cmp)
                            && window
                                .iter()
                                .filter(|c| is_operand(c) || c.kind == Tok::RParen)
                                .count()
                                >= 2
                        {
                            return Some("logic comparison");
                        }
                        // AND 1 / OR true, then end, comment or closing paren.
                        let mut j = i + 1;
                        while j < n && code[j].kind == Tok::LParen {
                            j += 1;
                        }
                        let a = code.get(j).copied().unwrap_or(a);
                        let mut j2 = j + 1;
                        while j2 < n && code[j2].kind == Tok::RParen {
                            j2 += 1;
                        }
                        let after = code.get(j2).copied();
                        let tail_comment = toks.last().is_some_and(|t| t.kind == Tok::Comment);
                        let literal_ok = match a.kind {
                            Tok::Str => !a.text.is_empty(),
                            _ => broke_out || tail_comment || j2 > j + 1,
                        };
                        // `; <statement>` may follow, but not `; <anything>`.
                        let after_semi_ok = code
                            .get(j2 + 1)
                            .is_none_or(|x| matches!(x.kind, Tok::Stmt | Tok::Tsql | Tok::Comment));
                        if matches!(a.kind, Tok::Num | Tok::Var | Tok::Str)
                            && (after.is_none()
                                || after.is_some_and(|x| {
                                    matches!(x.kind, Tok::RParen | Tok::Logic)
                                        || (x.kind == Tok::Semi && after_semi_ok)
                                }))
                            && (broke_out || starts_numeric)
                            && literal_ok
                        {
                            // Tautology-ish tail: `' or 1--`, `1 or true`.
                            if a.kind != Tok::Str || after.is_none() {
                                return Some("logic literal");
                            }
                        }
                        if a.kind == Tok::Op && a.text.eq_ignore_ascii_case(b"not") && broke_out {
                            return Some("logic not");
                        }
                    }
                }
            }
            // literal ORDER BY n / GROUP BY n / HAVING / LIMIT n / PROCEDURE ANALYSE / INTO OUTFILE
            Tok::Group
                if broke_out || starts_numeric || i > 0 && code[i - 1].kind == Tok::RParen =>
            {
                let prev = if i > 0 { Some(code[i - 1]) } else { None };
                if prev.is_none_or(|p| is_value(p)) || broke_out && i == 0 {
                    let mut j = i + 1;
                    if j < n
                        && code[j].kind == Tok::Keyword
                        && code[j].text.eq_ignore_ascii_case(b"by")
                    {
                        j += 1;
                    }
                    if j < n
                        && matches!(code[j].kind, Tok::Num | Tok::Func | Tok::Var | Tok::Keyword)
                        || (j >= n && toks.last().is_some_and(|t| t.kind == Tok::Comment))
                    {
                        return Some("group clause");
                    }
                    if t.text.eq_ignore_ascii_case(b"having") && j < n {
                        return Some("group clause");
                    }
                }
            }
            // Time-based / error-based functions anywhere after a break-out or operator.
            Tok::Func
                if in_list(
                    DANGER_FUNCS,
                    t.text.rsplit(|c| *c == b'.').next().unwrap_or(t.text),
                ) =>
            {
                let prev = if i > 0 { Some(code[i - 1]) } else { None };
                if broke_out
                    || starts_numeric
                    || prev.is_some_and(|p| {
                        matches!(
                            p.kind,
                            Tok::Op | Tok::Logic | Tok::LParen | Tok::Comma | Tok::Semi
                        )
                    })
                    || (i == 0 && n > i + 2)
                {
                    return Some("dangerous function");
                }
            }
            Tok::Tsql => {
                if t.text.eq_ignore_ascii_case(b"waitfor")
                    && next.is_some_and(|nx| {
                        nx.text.eq_ignore_ascii_case(b"delay")
                            || nx.text.eq_ignore_ascii_case(b"time")
                    })
                {
                    return Some("waitfor");
                }
                if (t.text.eq_ignore_ascii_case(b"exec") || t.text.eq_ignore_ascii_case(b"execute"))
                    && next.is_some_and(|nx| {
                        nx.kind == Tok::Word
                            && (nx.text.to_ascii_lowercase().starts_with(b"xp_")
                                || nx.text.to_ascii_lowercase().starts_with(b"sp_")
                                || nx.text.to_ascii_lowercase().starts_with(b"master."))
                    })
                {
                    return Some("exec");
                }
                if t.text.eq_ignore_ascii_case(b"declare")
                    && next.is_some_and(|nx| nx.kind == Tok::Var)
                {
                    return Some("declare");
                }
            }
            Tok::Op if t.cmp && broke_out && i <= 1 => {
                // ' = ' / '<>1 / 'like' : comparison right after the break-out.
                let good_operand = next.is_some_and(|nx| match nx.kind {
                    Tok::Num | Tok::Var | Tok::Func | Tok::LParen => true,
                    Tok::Str => nx.closed || !nx.text.is_empty(),
                    // `'>word` ends the value; `'>word--` is a fragment libinjection passes.
                    Tok::Word => {
                        next2.is_some_and(|x| x.kind == Tok::Logic)
                            || (next2.is_none()
                                && toks.last().is_none_or(|t| t.kind != Tok::Comment))
                    }
                    Tok::Op => nx.text.eq_ignore_ascii_case(b"not") || nx.text == b"!",
                    _ => false,
                });
                if good_operand
                    && (next2.is_none()
                        || next2.is_some_and(|x| {
                            matches!(
                                x.kind,
                                Tok::Logic
                                    | Tok::Op
                                    | Tok::RParen
                                    | Tok::Semi
                                    | Tok::Union
                                    | Tok::Group
                            )
                        }))
                {
                    return Some("comparison after break-out");
                }
            }
            _ => {}
        }
    }
    // A broken-out string closed by a comment: admin'--, x')#, 1'/*
    if broke_out {
        let first = &toks[0];
        let rest: Vec<&Token<'_>> = toks[1..].iter().collect();
        let short = first.text.len() <= 40 && !first.text.iter().any(|c| is_space(*c));
        if short {
            let mut j = 0;
            while j < rest.len() && rest[j].kind == Tok::RParen {
                j += 1;
            }
            if j < rest.len()
                && rest[j].kind == Tok::Comment
                && (rest[j].text.starts_with(b"--")
                    || rest[j].text.starts_with(b"/*")
                    || (rest[j].text.starts_with(b"#")
                        && rest[j].text[1..].trim_ascii().is_empty()))
            {
                return Some("comment after break-out");
            }
            if j < rest.len()
                && rest[j].kind == Tok::Semi
                && rest.get(j + 1).is_none_or(|t| t.kind == Tok::Comment)
            {
                return Some("statement end after break-out");
            }
        }
    }
    // A numeric value followed by a comment that hides the rest: `1)--`, `1 -- `, `1#`
    if ctx.is_none() && n >= 1 && toks.len() >= 2 {
        let f = &toks[0];
        if f.kind == Tok::Num {
            let mut j = 1;
            while j < toks.len() && toks[j].kind == Tok::RParen {
                j += 1;
            }
            if j > 1 && j < toks.len() && toks[j].kind == Tok::Comment && j + 1 == toks.len() {
                return Some("numeric break-out with comment");
            }
        }
    }
    None
}

/// Checks on the shape of the whole token sequence.
fn shape_checks(
    toks: &[Token<'_>],
    code: &[&Token<'_>],
    broke_out: bool,
    starts_numeric: bool,
) -> Option<&'static str> {
    let n = code.len();
    let kw = |t: &Token<'_>, w: &[u8]| t.text.eq_ignore_ascii_case(w);
    // x' <op> ...: an operator right after the break-out (`aa'|+'1`, `'&'`, `x'-!1 like'0`).
    if broke_out && n >= 3 && code[1].kind == Tok::Op && !code[1].text.starts_with(b":") {
        let op = code[1].text;
        let third = code[2];
        let operand = matches!(
            third.kind,
            Tok::Str | Tok::Num | Tok::LParen | Tok::Func | Tok::Var
        ) || (third.kind == Tok::Op && matches!(third.text, b"!" | b"!!" | b"~"));
        let strong_op = !matches!(op, b"-" | b"+" | b"/" | b"*" | b".");
        let later_str = code[2..]
            .iter()
            .any(|t| t.kind == Tok::Str && !t.text.is_empty());
        let lone = n == 3 && code[0].text.is_empty() && third.kind == Tok::Str;
        let bang = third.kind == Tok::Op;
        if operand
            && ((strong_op && (later_str || lone || third.kind != Tok::Str))
                || bang
                || (later_str && third.kind != Tok::Num))
        {
            return Some("operator after break-out");
        }
    }
    // ( ... ) --  : a parenthesised expression with the rest commented out.
    if n >= 3
        && code[0].kind == Tok::LParen
        && code[n - 1].kind == Tok::RParen
        && toks.last().is_some_and(|t| {
            t.kind == Tok::Comment && (t.text.starts_with(b"--") || t.text.starts_with(b"#"))
        })
    {
        return Some("parenthesised expression with comment");
    }
    // 1=1 AND ... / (1=1)
    let mut j = 0;
    while j < n && code[j].kind == Tok::LParen {
        j += 1;
    }
    if j + 2 < n
        && code[j].kind == Tok::Num
        && code[j + 1].kind == Tok::Op
        && code[j + 1].cmp
        && code[j + 2].kind == Tok::Num
        && (j > 0 || code.get(j + 3).is_some_and(|t| t.kind == Tok::Logic))
    {
        return Some("numeric tautology");
    }
    for (i, t) in code.iter().enumerate() {
        // CASE WHEN ... THEN
        if t.kind == Tok::Keyword
            && kw(t, b"case")
            && code.get(i + 1).is_some_and(|x| kw(x, b"when"))
            && code[i + 1..].iter().any(|x| kw(x, b"then"))
        {
            return Some("case expression");
        }
        // INTO OUTFILE / DUMPFILE
        if t.kind == Tok::Group
            && kw(t, b"into")
            && code
                .get(i + 1)
                .is_some_and(|x| kw(x, b"outfile") || kw(x, b"dumpfile"))
        {
            return Some("into outfile");
        }
        // -1 union ...
        if t.kind == Tok::Union
            && starts_numeric
            && i > 0
            && code[i - 1].kind == Tok::Num
            && code.get(i + 1).is_none_or(|x| x.kind != Tok::Word)
        {
            return Some("number union");
        }
        // select @version / select @@x
        if i == 0
            && t.kind == Tok::Stmt
            && kw(t, b"select")
            && code.get(1).is_some_and(|x| x.kind == Tok::Var)
        {
            return Some("select variable");
        }
        // 123+ ((0 / ascii(substring(...
        if starts_numeric
            && t.kind == Tok::Func
            && in_list(FUNCS, t.text)
            && i > 0
            && code[..i].iter().any(|x| x.kind == Tok::Op && !x.cmp)
        {
            return Some("numeric expression with sql function");
        }
    }
    None
}

/// The token fingerprint (libinjection-style letters, at most 8).
pub fn fingerprint(v: &[u8], quote: Option<u8>) -> String {
    tokenize(v, quote)
        .iter()
        .take(8)
        .map(|t| t.kind.letter())
        .collect()
}

/// Detect SQL injection; returns `ctx:fingerprint:reason` when found.
pub fn detect(v: &[u8]) -> Option<String> {
    if v.len() < 2 || !may_detect(v) {
        return None;
    }
    detect_all(v)
}

/// [`detect`] without the pre-check.
fn detect_all(v: &[u8]) -> Option<String> {
    for ctx in [None, Some(b'\''), Some(b'"')] {
        if let Some(q) = ctx {
            if !v.contains(&q) {
                continue;
            }
        }
        let toks = tokenize(v, ctx);
        if let Some(reason) = check(&toks, ctx) {
            let fp: String = toks.iter().take(8).map(|t| t.kind.letter()).collect();
            let c = match ctx {
                None => "as-is",
                Some(b'\'') => "squote",
                _ => "dquote",
            };
            return Some(format!("{c}:{fp}:{reason}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precheck_passes_plain_values_only() {
        for v in [
            &b"rampart-bench/0.1"[..],
            b"127.0.0.1:8080",
            b"gzip, deflate, br",
            b"/static/1k.json",
            b"Hello, I ordered a blue jacket last week",
            b"12345 abc_def $x \xa0 \xc3\xa9t\xc3\xa9",
        ] {
            assert!(!may_detect(v), "{:?}", String::from_utf8_lossy(v));
        }
        for v in [
            &b"1 union"[..],
            b"x or y",
            b"1union",
            b"0xfor",
            b"1e5OR",
            b"a\xa0select",
            b"x -- y",
            b"a/*b",
            b"a*/",
            b"a||b",
            b"a&&b",
            b"a;b",
            b"f(x)",
            b"a=b",
            b"a'b",
            b"@@version",
            b"\\Nunion",
            b"Mozilla/5.0 (X11; Linux x86_64)",
            b"x like y",
        ] {
            assert!(may_detect(v), "{:?}", String::from_utf8_lossy(v));
        }
        // Dotted words are never in a list (the pre-check relies on it).
        for (list, _) in WORD_LISTS {
            assert!(list.iter().all(|w| !w.contains('.')), "{list:?}");
        }
    }

    /// Values built from SQL words, numbers and punctuation (including the tokenizer's
    /// corner cases: glued numbers, hex, exponents, dots, non-breaking spaces): wherever the
    /// pre-check says "nothing", the full detector finds nothing. Every sequence of up to
    /// three pieces (joined directly or by a space), then random longer ones.
    #[test]
    fn precheck_never_hides_a_finding() {
        let pieces: &[&[u8]] = &[
            b"union", b"select", b"or", b"like", b"case", b"from", b"order", b"by", b"into",
            b"sleep", b"waitfor", b"exec", b"null", b"not", b"drop", b"table", b"user", b"1",
            b"0x", b"1e5", b"1.", b".", b"\xa0", b"-", b"/", b"*", b"|", b"&", b"!", b"+", b":",
            b",", b")", b"$", b"_", b"\x80", b"N", b"abc", b"(", b";", b"'", b"\"", b"`", b"=",
            b"<", b">", b"#", b"@", b"\\", b"--", b"/*", b"*/", b"||", b"&&",
        ];
        let (mut skipped, mut total) = (0u32, 0u32);
        let mut check = |v: &[u8]| {
            total += 1;
            if v.len() >= 2 && !may_detect(v) {
                skipped += 1;
                assert_eq!(
                    detect_all(v),
                    None,
                    "pre-check hides {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        };
        for a in pieces {
            check(a);
            for b in pieces {
                for sep in [&b""[..], b" "] {
                    let ab = [*a, sep, *b].concat();
                    check(&ab);
                    for c in pieces {
                        for sep2 in [&b""[..], b" "] {
                            check(&[&ab[..], sep2, *c].concat());
                        }
                    }
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..100_000 {
            let n = 4 + next() % 5;
            let mut v = Vec::new();
            for _ in 0..n {
                v.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                if next() % 3 == 0 {
                    v.push(b' ');
                }
            }
            check(&v);
        }
        // The test means something only if the pre-check passes many of them.
        assert!(skipped > total / 20, "{skipped} of {total}");
    }

    /// Every value of the corpus (attacks and benign), as sent and URL-decoded: the same
    /// answer with and without the pre-check.
    #[test]
    fn precheck_keeps_corpus_answers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/waf-corpus/params.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let mut n = 0;
        for line in text.lines() {
            let Ok(case) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(v) = case.get("value").and_then(serde_json::Value::as_str) else {
                continue;
            };
            for v in [
                v.as_bytes().to_vec(),
                crate::transform::url_decode(v.as_bytes(), false),
            ] {
                n += 1;
                assert_eq!(
                    detect(&v),
                    detect_all(&v),
                    "{:?}",
                    String::from_utf8_lossy(&v)
                );
            }
        }
        assert!(n > 1000, "{n} values");
    }

    #[test]
    fn word_lists_agree_with_the_lists() {
        let lists = WORD_LISTS;
        let mut words: Vec<Vec<u8>> = lists
            .iter()
            .flat_map(|(l, _)| l.iter())
            .flat_map(|w| {
                let w = w.as_bytes();
                [
                    w.to_vec(),
                    w.to_ascii_uppercase(),
                    w[..w.len() - 1].to_vec(),
                    [w, b"x"].concat(),
                ]
            })
            .collect();
        words.extend([
            b"".to_vec(),
            b"rampart".to_vec(),
            vec![b'a'; 40],
            b"Sel\xe9ct".to_vec(),
        ]);
        for w in &words {
            let got = word_lists(w);
            for (list, bit) in lists {
                assert_eq!(
                    got & bit != 0,
                    in_list(list, w),
                    "{:?}",
                    String::from_utf8_lossy(w)
                );
            }
        }
    }

    #[test]
    fn attacks() {
        for a in [
            "1' or '1'='1",
            "1 or 1=1",
            "admin'--",
            "' union select null,null--",
            "1 union all select 1,2,3",
            "-1' union select password from users#",
            "1); drop table users--",
            "1' and sleep(5)#",
            "1 and (select 1 from dual)=1",
            "1' order by 3--",
            "' or ''='",
            "1;waitfor delay '0:0:5'--",
            "x' and 1=0 union select 1,@@version--",
            "1\" or \"a\"=\"a",
            "1')) or (('a'='a",
            "1 AND 8189=(SELECT COUNT(*) FROM sysibm.systables)",
            "1' rlike (select (case when (1=1) then 1 else 0x28 end))",
            "1) where 7881=7881 and 9660=(select count(*) from all_users)--",
        ] {
            assert!(
                detect(a.as_bytes()).is_some(),
                "missed {a:?}: {}",
                fingerprint(a.as_bytes(), None)
            );
        }
    }

    #[test]
    fn benign() {
        for b in [
            "hello world",
            "O'Reilly",
            "LAPTOP CASE 13 AND PHONE",
            "1060 OR 70S",
            "NOT ALL WHO WANDER",
            "select your favourite colour",
            "rock and roll",
            "john.doe@example.com",
            "It's 5 o'clock",
            "\"RIGHT ON\"",
            "I <3 <3",
            "12-34-56",
            "tom & jerry",
            "",
            "2+2=4",
            // Fragments libinjection passes: a comparison with nothing compared against, a
            // literal followed by more prose, a word comparison without a left value.
            "test' or 1=",
            "' or true; foo",
            "'or(glob 1)--",
            "x'<email--",
        ] {
            assert!(
                detect(b.as_bytes()).is_none(),
                "false positive {b:?}: {:?}",
                detect(b.as_bytes())
            );
        }
    }

    #[test]
    fn bounded_on_long_input() {
        let long = "a ".repeat(100_000);
        assert!(detect(long.as_bytes()).is_none());
        let quotes = "'".repeat(50_000);
        let _ = detect(quotes.as_bytes());
    }
}
