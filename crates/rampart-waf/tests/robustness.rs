//! Randomised robustness checks (a cheap stand-in for the `fuzz/` targets in CI): body
//! parsers, transformations, tokenizers, the rule loader and whole inspections never panic on
//! arbitrary bytes. Deterministic (fixed-seed xorshift), bounded in count.

use std::sync::Arc;

use rampart_waf::{
    Engine, Limits, Scoring, WafPolicy, WafRequest, seclang::Loader, transform::Transform,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Random bytes biased towards the characters parsers and decoders care about.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        const INTERESTING: &[u8] = b"%&;=+\\\"'<>/.-#*()[]{}$`|\n\r\0 uxXaZ09:@!?,";
        let len = (self.next() % max as u64) as usize;
        (0..len)
            .map(|_| {
                let r = self.next();
                if r.is_multiple_of(3) {
                    (r >> 8) as u8
                } else {
                    INTERESTING[(r >> 8) as usize % INTERESTING.len()]
                }
            })
            .collect()
    }
}

const TRANSFORMS: &[&str] = &[
    "urlDecode",
    "urlDecodeUni",
    "htmlEntityDecode",
    "jsDecode",
    "cssDecode",
    "lowercase",
    "compressWhitespace",
    "removeWhitespace",
    "removeNulls",
    "replaceNulls",
    "removeComments",
    "replaceComments",
    "removeCommentsChar",
    "normalisePath",
    "normalisePathWin",
    "base64Decode",
    "base64DecodeExt",
    "hexDecode",
    "sqlHexDecode",
    "cmdLine",
    "utf8toUnicode",
    "length",
    "trim",
    "escapeSeqDecode",
];

#[test]
fn nothing_panics_on_random_input() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let policy = WafPolicy::new(Arc::new(Engine::builtin().expect("builtin")));
    let limits = Limits::default();
    let cts: [&[u8]; 5] = [
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=XyZ",
        b"application/json",
        b"text/xml",
        b"text/plain",
    ];
    for round in 0..1500usize {
        let v = rng.bytes(300);
        for name in TRANSFORMS {
            let t = Transform::from_name(name).expect("known");
            let out = t.apply(&v);
            assert!(out.len() <= v.len() * 6 + 16, "{name} grew too much");
            if t.is_noop_for(&v) {
                assert_eq!(out, v, "{name}: no-op check disagrees");
            }
        }
        let _ = rampart_waf::sqli::detect(&v);
        let _ = rampart_waf::xss::detect(&v);
        let mut body = rng.bytes(400);
        if round.is_multiple_of(4) {
            body.splice(
                0..0,
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                    .iter()
                    .copied(),
            );
        }
        let ct = cts[round % cts.len()];
        let uri = rng.bytes(120);
        let req = WafRequest::build(
            "POST",
            &uri,
            "HTTP/1.1",
            [
                (&b"content-type"[..], ct),
                (&b"cookie"[..], &v[..v.len().min(60)]),
            ],
            Some(&body),
            &limits,
        );
        let _ = policy.engine.inspect(&req, &policy, None);
        let text = String::from_utf8_lossy(&rng.bytes(200)).into_owned();
        let mut l = Loader::new();
        if l.add_text(
            "random.conf",
            &format!("SecRule ARGS \"{text}\" \"id:1,deny\"\n{text}"),
            None,
        )
        .is_ok()
        {
            let _ = l.finish(Scoring::Rules);
        }
    }
}
