//! CSS: `minifier::css` (the minifier rustdoc uses for its own CSS; no dependencies) after
//! a structural check of our own, because that minifier accepts unbalanced input.
//!
//! The minifier removes comments and insignificant whitespace only (no rewriting of values),
//! which keeps the risk low. Declined (input served unchanged): unterminated strings or
//! comments, unbalanced `{}` `()` `[]`, invalid UTF-8, or a minifier error.

/// Minify `input`; `None` = serve it unchanged.
pub fn css(input: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).ok()?;
    if !balanced(input) {
        return None;
    }
    let out = minifier::css::minify(text).ok()?.to_string();
    // The output must still be balanced (a guard against minifier bugs).
    balanced(out.as_bytes()).then(|| out.into_bytes())
}

/// Strings and comments terminated, brackets balanced and properly nested.
fn balanced(b: &[u8]) -> bool {
    let mut stack = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'*') => {
                match b[i + 2..].windows(2).position(|w| w == b"*/") {
                    Some(p) => i += p + 4,
                    None => return false,
                }
                continue;
            }
            q @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => return false,
                        Some(b'\\') => i += 2,
                        Some(c) if *c == q => break,
                        _ => i += 1,
                    }
                }
            }
            c @ (b'{' | b'(' | b'[') => stack.push(c),
            c @ (b'}' | b')' | b']') => {
                let open = match c {
                    b'}' => b'{',
                    b')' => b'(',
                    _ => b'[',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    stack.is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn m(s: &str) -> Option<String> {
        css(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn minifies_without_changing_values() {
        for (src, want) in [
            (
                "a:not(.b) .c {\n  width: calc(1px + 2px); /* note */\n}\n",
                "a:not(.b) .c{width:calc(1px + 2px);}",
            ),
            (
                "@media screen and (max-width: 100px) { .a .b { x: y } }",
                "@media screen and (max-width:100px){.a .b{x:y}}",
            ),
            (
                "a::after { content: '/* not a comment */  x' }",
                "a::after{content:'/* not a comment */  x'}",
            ),
        ] {
            assert_eq!(m(src).as_deref(), Some(want), "{src:?}");
        }
    }

    #[test]
    fn declines_broken_input() {
        for src in [
            "a { color: red;",
            "}}} {{{",
            "a{b:\"x}",
            "a{b:c}/* x",
            "a { b: f(x }",
        ] {
            assert_eq!(m(src), None, "{src:?}");
        }
    }
}
