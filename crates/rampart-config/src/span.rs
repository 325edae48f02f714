//! Key paths and their positions in the TOML text.

use std::fmt::Write as _;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Render segments as `a.b[1].c`.
pub(crate) fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    if s.is_empty() { "(file)".into() } else { s }
}

/// Parse `a.b[1].c` back into segments.
pub(crate) fn parse(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// Spans of a parsed document, for turning key paths into line/column.
pub(crate) struct Spans<'a> {
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Spans<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            doc: toml_edit::ImDocument::parse(text).ok(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, col)
    }

    /// Where the value at `path` is (or, with `key_span`, where its key is).
    pub(crate) fn locate(&self, path: &[Seg], key_span: bool) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut item = Node::Table(doc.as_table());
        let mut last_key_span = None;
        for seg in path {
            let next = match (item, seg) {
                (Node::Table(t), Seg::Key(k)) => {
                    last_key_span = t.key(k).and_then(|k| k.span());
                    t.get(k).map(Node::from_item)
                }
                (Node::Inline(t), Seg::Key(k)) => {
                    last_key_span = t.key(k).and_then(|k| k.span());
                    t.get(k).map(Node::Value)
                }
                (Node::Aot(a), Seg::Index(i)) => a.get(*i).map(Node::Table),
                (Node::Value(toml_edit::Value::Array(a)), Seg::Index(i)) => {
                    a.get(*i).map(Node::Value)
                }
                _ => None,
            };
            match next {
                Some(n) => item = n,
                None => {
                    // Key absent (e.g. a missing required key): point at the parent.
                    return item.span().map(|s| self.line_col(s.start));
                }
            }
        }
        let span = if key_span {
            last_key_span.or_else(|| item.span())
        } else {
            item.span().or(last_key_span)
        };
        span.map(|s| self.line_col(s.start))
    }
}

#[derive(Clone, Copy)]
enum Node<'d> {
    Table(&'d toml_edit::Table),
    Inline(&'d toml_edit::InlineTable),
    Aot(&'d toml_edit::ArrayOfTables),
    Value(&'d toml_edit::Value),
    None,
}

impl<'d> Node<'d> {
    fn from_item(i: &'d toml_edit::Item) -> Self {
        match i {
            toml_edit::Item::Table(t) => Node::Table(t),
            toml_edit::Item::ArrayOfTables(a) => Node::Aot(a),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => Node::Inline(t),
            toml_edit::Item::Value(v) => Node::Value(v),
            toml_edit::Item::None => Node::None,
        }
    }

    fn span(self) -> Option<std::ops::Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Inline(t) => t.span(),
            Node::Aot(a) => a.span(),
            Node::Value(v) => v.span(),
            Node::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for p in ["routes[1].upstream", "server.listen[0]", "a", "a[0][1].b"] {
            assert_eq!(render(&parse(p)), p);
        }
    }

    #[test]
    fn locates_values_and_keys() {
        let text = "[server]\nlisten = [\"x\"]\n\n[[routes]]\nname = \"a\"\n\n[[routes]]\nname = \"b\"\nupstream = \"api\"\n";
        let s = Spans::new(text);
        assert_eq!(s.locate(&parse("routes[1].upstream"), false), Some((9, 12)));
        assert_eq!(s.locate(&parse("routes[1].upstream"), true), Some((9, 1)));
        assert_eq!(s.locate(&parse("server.listen[0]"), false), Some((2, 11)));
    }
}
