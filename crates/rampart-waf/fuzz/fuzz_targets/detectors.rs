//! Fuzz the SQLi and XSS tokenizers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rampart_waf::sqli::detect(data);
    let _ = rampart_waf::xss::detect(data);
});
