//! Fuzz the SecLang loader: arbitrary rule text never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_waf::{Scoring, seclang::Loader};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut l = Loader::new();
    if l.add_text("fuzz.conf", &text, None).is_ok() {
        let _ = l.finish(Scoring::Rules);
    }
});
