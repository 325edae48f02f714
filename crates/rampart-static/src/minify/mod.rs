//! Minification: pure functions, one per kind, each returning `None` (= serve the input
//! byte for byte) when the input does not parse, the minifier fails or panics, or the
//! result is not smaller.
//!
//! | kind | how | why |
//! |---|---|---|
//! | HTML | [`html`]: our own conservative minifier (comments, whitespace runs), inline CSS/JS through the two below | see below |
//! | CSS | [`css`]: `minifier::css` behind a structural check of ours | the minifier rustdoc uses for its own CSS (kept by a rustdoc maintainer), zero dependencies; removes comments and whitespace only |
//! | JS | [`js`]: our own comment/whitespace remover that keeps line breaks for ASI | no crate both reports syntax errors and builds cheaply (see below) |
//! | JSON | [`json`]: our own scanner | removes whitespace outside strings and nothing else |
//!
//! Why not `minify-html` / `lightningcss` / `oxc`: they were the first choice, but
//! `minify-html` 0.18 pulls in both `lightningcss` and the oxc toolchain (about 200 crates
//! together, `oxc` alone 144), which did not finish building within the time budget on the
//! shared 2-core build machine and would weigh on every CI run. `minifier::js` was measured
//! and rejected: it joins lines without regard to automatic semicolon insertion
//! (`let a = 1\nlet b = 2` becomes `let a=1let b=2`, `return\n42` becomes `return 42`) and
//! accepts syntax errors. `minify-js` is unmaintained. The conservative minifiers here save
//! less than a mangling minifier but never change what the code means; swapping in
//! `oxc_minifier` / `lightningcss` later only touches this module.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::config::MinifyKind;

pub mod css;
pub mod html;
pub mod js;
pub mod json;

/// Minify `input` as `kind`; `None` means "pass it through unchanged".
pub fn minify(kind: MinifyKind, input: &[u8]) -> Option<Vec<u8>> {
    let out = catch_unwind(AssertUnwindSafe(|| match kind {
        MinifyKind::Html => html::html(input),
        MinifyKind::Css => css::css(input),
        MinifyKind::Js => js::js(input),
        MinifyKind::Json => json::json(input),
    }))
    .ok()
    .flatten()?;
    (out.len() < input.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_smaller_means_passthrough() {
        assert_eq!(minify(MinifyKind::Json, b"{}"), None);
        assert_eq!(minify(MinifyKind::Js, b"a"), None);
    }

    #[test]
    fn every_kind_declines_garbage() {
        for k in MinifyKind::ALL {
            assert_eq!(minify(k, b"\xff\xfe  {{{ '"), None, "{k:?}");
        }
    }
}
