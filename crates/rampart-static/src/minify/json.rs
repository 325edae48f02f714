//! JSON: a scanner of our own that removes the whitespace between tokens and nothing else.

/// JSON: drop the whitespace between tokens, keep every other byte. `None` when the
/// input is not well-formed enough to be sure what is inside a string (unterminated
/// string, unbalanced brackets, a byte that cannot appear outside a string).
pub fn json(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut depth: Vec<u8> = Vec::new();
    let mut i = 0;
    let mut values = 0usize;
    while i < input.len() {
        let c = input[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match input.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break,
                        c if *c < 0x20 => return None,
                        _ => i += 1,
                    }
                }
                out.extend_from_slice(&input[start..=i]);
                if depth.is_empty() {
                    values += 1;
                }
            }
            b'{' | b'[' => {
                depth.push(c);
                out.push(c);
            }
            b'}' | b']' => {
                let open = depth.pop()?;
                if (open, c) != (b'{', b'}') && (open, c) != (b'[', b']') {
                    return None;
                }
                out.push(c);
                if depth.is_empty() {
                    values += 1;
                }
            }
            b',' | b':' => {
                if depth.is_empty() {
                    return None;
                }
                out.push(c);
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z' => {
                // A literal (number, true, false, null): copy it whole, so whitespace
                // inside `1 2` is never joined into `12`.
                let start = i;
                while i < input.len()
                    && matches!(input[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'E' | b'a'..=b'z')
                {
                    i += 1;
                }
                let lit = &input[start..i];
                if lit[0].is_ascii_lowercase() && !matches!(lit, b"true" | b"false" | b"null") {
                    return None;
                }
                out.extend_from_slice(lit);
                if depth.is_empty() {
                    values += 1;
                }
                continue;
            }
            _ => return None,
        }
        i += 1;
    }
    (depth.is_empty() && values == 1).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn s(v: Option<Vec<u8>>) -> Option<String> {
        v.map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn json_strips_only_whitespace() {
        assert_eq!(
            s(json(
                b"{ \"a b\" : [ 1 , 2.5e3, true, null ],\n \"c\":\"x\\\" y\" }"
            ))
            .as_deref(),
            Some("{\"a b\":[1,2.5e3,true,null],\"c\":\"x\\\" y\"}")
        );
        assert_eq!(s(json(b" 42 ")).as_deref(), Some("42"));
        for bad in [
            &b"{\"a\": 1"[..],
            b"{\"a\": \"x}",
            b"[1, 2}",
            b"1 2",
            b"{\"a\": undefined}",
            b"{\"a\": 'x'}",
            b"",
            b"// c\n{}",
            b"[\"a\nb\"]",
        ] {
            assert_eq!(json(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
