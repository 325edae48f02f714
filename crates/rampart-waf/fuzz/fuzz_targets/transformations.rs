//! Fuzz every transformation: no panic, bounded growth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_waf::transform::Transform;

const NAMES: &[&str] = &[
    "urlDecode", "urlDecodeUni", "htmlEntityDecode", "jsDecode", "cssDecode", "lowercase",
    "compressWhitespace", "removeWhitespace", "removeNulls", "removeComments", "replaceComments",
    "removeCommentsChar", "normalisePath", "normalisePathWin", "base64Decode", "base64DecodeExt",
    "hexDecode", "sqlHexDecode", "cmdLine", "utf8toUnicode", "length", "trim", "escapeSeqDecode",
];

fuzz_target!(|data: &[u8]| {
    for n in NAMES {
        if let Ok(t) = Transform::from_name(n) {
            let out = t.apply(data);
            assert!(out.len() <= data.len() * 6 + 16);
            assert!(!t.is_noop_for(data) || out == data);
        }
    }
});
