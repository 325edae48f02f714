//! The built-in rule set, written for Rampart in SecLang and embedded in the binary
//! (`rules/builtin.conf`). Paranoia levels come from `tag:'paranoia-level/N'`, scores from
//! `severity` (native scoring).

use crate::{
    engine::{Engine, Scoring},
    seclang::{LoadError, Loader},
};

/// The embedded rule text.
pub const BUILTIN_RULES: &str = include_str!("../rules/builtin.conf");

/// Compile the built-in rule set.
pub fn engine() -> Result<Engine, LoadError> {
    let mut l = Loader::new();
    l.add_text("builtin.conf", BUILTIN_RULES, None)?;
    Ok(l.finish(Scoring::Native))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_compiles_cleanly() {
        let e = engine().unwrap();
        let r = e.report();
        assert!(r.dropped_rules.is_empty(), "{r}");
        assert!(r.unsupported_directives.is_empty(), "{r}");
        assert!(r.warnings.is_empty(), "{r}");
        assert!(e.rule_count() > 20);
    }
}
