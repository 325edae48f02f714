//! JavaScript: a conservative minifier of our own that removes comments and insignificant
//! whitespace and never rewrites code.
//!
//! It keeps every line break that could matter for automatic semicolon insertion (a break is
//! dropped only after `;` `{` `,` `(` `[` or before `}` `)` `]` `,` `;`, where it never does),
//! keeps one space where two tokens would otherwise merge (`a b`, `+ +`, `- -`, `/ /`,
//! `1 .x`), and copies strings, template literals (with nested `${…}`), regular expression
//! literals and `/*! … */` licence comments byte for byte.
//!
//! It declines (returns `None`, so the input is served unchanged) on anything it cannot be
//! sure about: an unterminated string, comment, template or regex, unbalanced brackets, a
//! `/` after `}` (block or object literal: regex or division?), HTML-like comments
//! (`<!--`, `-->`), a hashbang, and the Unicode line terminators and spaces that would need
//! the full grammar (U+2028, U+2029, U+00A0, U+FEFF) outside literals.

/// Keywords after which `/` starts a regular expression.
const REGEX_AFTER: &[&[u8]] = &[
    b"return",
    b"typeof",
    b"instanceof",
    b"in",
    b"of",
    b"new",
    b"delete",
    b"void",
    b"throw",
    b"case",
    b"do",
    b"else",
    b"yield",
    b"await",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Start of input or after a punctuator: `/` starts a regex.
    Operator,
    /// After an identifier, number, literal, `)` or `]`: `/` divides.
    Value,
    /// After `}`: ambiguous.
    Brace,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren,
    Bracket,
    Brace,
    /// `${` inside a template literal.
    Template,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'\\' || c >= 0x80
}

/// Minify `input` (UTF-8); `None` = serve it unchanged.
pub fn js(input: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(input).ok()?;
    if input.starts_with(b"#!") {
        return None;
    }
    let mut m = Minifier {
        src: input,
        i: 0,
        out: Vec::with_capacity(input.len()),
        space: false,
        newline: false,
        last: Last::Operator,
        stack: Vec::new(),
    };
    m.run()?;
    m.stack.is_empty().then_some(m.out)
}

struct Minifier<'a> {
    src: &'a [u8],
    i: usize,
    out: Vec<u8>,
    space: bool,
    newline: bool,
    last: Last,
    stack: Vec<Open>,
}

impl Minifier<'_> {
    fn peek(&self, off: usize) -> Option<u8> {
        self.src.get(self.i + off).copied()
    }

    /// Emit the pending whitespace (if needed) before a token starting with `next`.
    fn sep(&mut self, next: u8) {
        let prev = self.out.last().copied();
        if self.newline {
            let droppable = prev.is_none_or(|p| matches!(p, b';' | b'{' | b',' | b'(' | b'['))
                || matches!(next, b'}' | b')' | b']' | b',' | b';');
            if !droppable {
                self.out.push(b'\n');
            }
        } else if self.space
            && let Some(p) = prev
        {
            let merge = (is_ident(p) && is_ident(next))
                || matches!(
                    (p, next),
                    (b'+', b'+')
                        | (b'-', b'-')
                        | (b'/', b'/')
                        | (b'/', b'*')
                        | (b'<', b'!')
                        | (b'-', b'>')
                )
                || (p.is_ascii_digit() && next == b'.')
                || (p == b'.' && next.is_ascii_digit());
            if merge {
                self.out.push(b' ');
            }
        }
        self.space = false;
        self.newline = false;
    }

    fn run(&mut self) -> Option<()> {
        while let Some(c) = self.peek(0) {
            match c {
                b' ' | b'\t' | 0x0b | 0x0c => {
                    self.space = true;
                    self.i += 1;
                }
                b'\n' | b'\r' => {
                    self.newline = true;
                    self.i += 1;
                }
                0xe2 if matches!(
                    (self.peek(1), self.peek(2)),
                    (Some(0x80), Some(0xa8 | 0xa9))
                ) =>
                {
                    return None;
                }
                0xc2 if self.peek(1) == Some(0xa0) => return None,
                0xef if (self.peek(1), self.peek(2)) == (Some(0xbb), Some(0xbf)) => return None,
                b'/' if self.peek(1) == Some(b'/') => {
                    while let Some(c) = self.peek(0) {
                        if c == b'\n' || c == b'\r' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                b'/' if self.peek(1) == Some(b'*') => self.block_comment()?,
                b'/' => match self.last {
                    Last::Operator => self.regex()?,
                    Last::Value => self.punct(c),
                    Last::Brace => return None,
                },
                b'\'' | b'"' => self.string(c)?,
                b'`' => {
                    self.sep(c);
                    self.template(true)?;
                }
                b'<' if self.src[self.i..].starts_with(b"<!--") => return None,
                b'-' if self.src[self.i..].starts_with(b"-->") => return None,
                b'(' | b'[' | b'{' => {
                    self.stack.push(match c {
                        b'(' => Open::Paren,
                        b'[' => Open::Bracket,
                        _ => Open::Brace,
                    });
                    self.punct(c);
                }
                b')' | b']' | b'}' => {
                    let want = match c {
                        b')' => Open::Paren,
                        b']' => Open::Bracket,
                        _ => Open::Brace,
                    };
                    match self.stack.pop()? {
                        Open::Template if c == b'}' => {
                            self.sep(c);
                            self.out.push(c);
                            self.i += 1;
                            self.template(false)?;
                        }
                        open if open == want => {
                            self.punct(c);
                            self.last = if c == b'}' { Last::Brace } else { Last::Value };
                        }
                        _ => return None,
                    }
                }
                c if is_ident(c) => self.word()?,
                _ => self.punct(c),
            }
        }
        Some(())
    }

    fn punct(&mut self, c: u8) {
        self.sep(c);
        self.out.push(c);
        self.i += 1;
        self.last = Last::Operator;
    }

    fn word(&mut self) -> Option<()> {
        let start = self.i;
        while self.peek(0).is_some_and(is_ident) {
            self.i += 1;
        }
        let w = &self.src[start..self.i];
        // Non-ASCII runs may hide a line terminator or a space the grammar treats specially.
        let special: [&[u8]; 4] = [
            "\u{2028}".as_bytes(),
            "\u{2029}".as_bytes(),
            "\u{a0}".as_bytes(),
            "\u{feff}".as_bytes(),
        ];
        if special.iter().any(|s| w.windows(s.len()).any(|x| x == *s)) {
            return None;
        }
        self.sep(w[0]);
        self.out.extend_from_slice(w);
        self.last = if REGEX_AFTER.contains(&w) {
            Last::Operator
        } else {
            Last::Value
        };
        Some(())
    }

    fn block_comment(&mut self) -> Option<()> {
        let start = self.i;
        let len = self.src[start + 2..].windows(2).position(|w| w == b"*/")? + 4;
        let body = &self.src[start..start + len];
        self.i += len;
        if body.starts_with(b"/*!") {
            // Licence comment: kept on its own line.
            if !self.out.is_empty() {
                self.out.push(b'\n');
            }
            self.out.extend_from_slice(body);
            self.newline = true;
            self.space = false;
        } else if body.contains(&b'\n') || body.contains(&b'\r') {
            self.newline = true;
        } else {
            self.space = true;
        }
        Some(())
    }

    fn string(&mut self, q: u8) -> Option<()> {
        self.sep(q);
        let start = self.i;
        self.i += 1;
        loop {
            match self.peek(0)? {
                b'\\' => self.i += 2,
                b'\n' | b'\r' => return None,
                c if c == q => {
                    self.i += 1;
                    break;
                }
                _ => self.i += 1,
            }
        }
        self.out.extend_from_slice(self.src.get(start..self.i)?);
        self.last = Last::Value;
        Some(())
    }

    /// Template text from the opening backtick (`opening`) or from just after the `}` that
    /// closes a substitution, to the closing backtick or the next `${`.
    fn template(&mut self, opening: bool) -> Option<()> {
        let start = self.i;
        if opening {
            self.i += 1;
        }
        loop {
            match self.peek(0)? {
                b'\\' => self.i += 2,
                b'`' => {
                    self.i += 1;
                    self.out.extend_from_slice(self.src.get(start..self.i)?);
                    self.last = Last::Value;
                    return Some(());
                }
                b'$' if self.peek(1) == Some(b'{') => {
                    self.i += 2;
                    self.out.extend_from_slice(self.src.get(start..self.i)?);
                    self.stack.push(Open::Template);
                    self.last = Last::Operator;
                    return Some(());
                }
                _ => self.i += 1,
            }
        }
    }

    fn regex(&mut self) -> Option<()> {
        self.sep(b'/');
        let start = self.i;
        self.i += 1;
        let mut class = false;
        loop {
            match self.peek(0)? {
                b'\\' => self.i += 2,
                b'\n' | b'\r' => return None,
                b'[' => {
                    class = true;
                    self.i += 1;
                }
                b']' => {
                    class = false;
                    self.i += 1;
                }
                b'/' if !class => {
                    self.i += 1;
                    break;
                }
                _ => self.i += 1,
            }
        }
        while self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        self.out.extend_from_slice(self.src.get(start..self.i)?);
        self.last = Last::Value;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn m(s: &str) -> Option<String> {
        js(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn strips_comments_and_space_but_keeps_asi_line_breaks() {
        for (src, want) in [
            (
                "function add(a, b) {\n  // sum\n  return a + b;\n}\n",
                "function add(a,b){return a+b;}",
            ),
            (
                "let a = 1\nlet b = 2\nconsole.log(a + b)\n",
                "let a=1\nlet b=2\nconsole.log(a+b)",
            ),
            (
                "var x = 1\n;(function(){ return\n 42 })()\n",
                "var x=1;(function(){return\n42})()",
            ),
            ("a = b\n++c\n", "a=b\n++c"),
            ("a = b + +c - -d + ++e", "a=b+ +c- -d+ ++e"),
            ("x = 1 .toString()", "x=1 .toString()"),
            ("/* a */ x /* b */ = /* multi\n line */ 1", "x=\n1"),
            (
                "/*! (c) licence */\nvar a = 1",
                "/*! (c) licence */\nvar a=1",
            ),
        ] {
            assert_eq!(m(src).as_deref(), Some(want), "{src:?}");
        }
    }

    #[test]
    fn literals_are_copied_verbatim() {
        for (src, want) in [
            (
                "const s = 'x // y  z', t = \"a /* b */\";",
                "const s='x // y  z',t=\"a /* b */\";",
            ),
            (
                "const re = /a  b\\/[/ ]c/gi ; x = a / 2 / b",
                "const re=/a  b\\/[/ ]c/gi;x=a/2/b",
            ),
            ("return /  x/.test(y)", "return/  x/.test(y)"),
            (
                "const t = `a  ${ b + `c  ${ d }` }  e`;",
                "const t=`a  ${b+`c  ${d}`}  e`;",
            ),
            ("s = 'a\\\nb'", "s='a\\\nb'"),
            ("const café = 1", "const café=1"),
        ] {
            assert_eq!(m(src).as_deref(), Some(want), "{src:?}");
        }
    }

    #[test]
    fn declines_what_it_cannot_be_sure_of() {
        for src in [
            "function broken( {\n  return 1 +;\n",
            "x = 'unterminated\n",
            "x = `unterminated",
            "/* unterminated",
            "x = /unterminated\n",
            "if (a) { b }\n/re/.test(c)",
            "a = [1, 2)",
            "x = 1 <!-- html comment",
            "#!/usr/bin/env node\nx()",
            "a\u{2028}b",
            "a\u{a0}= 1",
        ] {
            assert_eq!(m(src), None, "{src:?}");
        }
    }
}
