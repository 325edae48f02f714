//! Fuzz the request model: form, multipart, JSON and XML body parsers and the URI split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_waf::{Limits, WafRequest};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|c| *c == 0).unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    for ct in [
        &b"application/x-www-form-urlencoded"[..],
        b"multipart/form-data; boundary=XyZ",
        b"application/json",
        b"text/xml",
    ] {
        let r = WafRequest::build(
            "POST",
            head,
            "HTTP/1.1",
            [(&b"content-type"[..], ct), (&b"cookie"[..], head)],
            Some(body),
            &Limits::default(),
        );
        let _ = r.entries().len();
    }
});
