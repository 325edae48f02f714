//! `[[waf.exclusions]]` and `[[routes.waf.exclusions]]`: rules, targets or clients the WAF
//! leaves alone (see docs/waf.md, "Exclusions").

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One WAF exclusion.
///
/// * `rule_ids` only: those rules are removed;
/// * `rule_ids` + `target`: those rules do not look at that target;
/// * `target` only: no rule looks at it;
/// * `clients` only: the WAF is off for those clients (with ids or a target: the exclusion
///   only applies to those clients).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WafExclusionConfig {
    /// Rule ids (`242100`) or inclusive ranges (`"210000-210999"`). Default: empty (every
    /// rule).
    pub rule_ids: Vec<RuleIdSpec>,
    /// The one target not inspected: a collection and an optional key, `"ARGS:password"`,
    /// `"REQUEST_HEADERS:User-Agent"`, `"REQUEST_COOKIES:/^sess_/"` (a regex key). Default:
    /// none (the rules are removed).
    pub target: Option<String>,
    /// Client networks the exclusion applies to (CIDRs). Default: empty (every client).
    pub clients: Vec<IpNet>,
}

/// A rule id or an inclusive `"from-to"` range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RuleIdSpec {
    /// One id.
    Id(u32),
    /// `"210000-210999"` (or one id as a string, `"242100"`).
    Range(String),
}

impl RuleIdSpec {
    /// The inclusive range this spec names.
    pub fn range(&self) -> Result<(u32, u32), String> {
        match self {
            RuleIdSpec::Id(id) => Ok((*id, *id)),
            RuleIdSpec::Range(s) => {
                let num = |x: &str| {
                    x.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("{s:?} is not a rule id or a \"from-to\" range"))
                };
                let (a, b) = match s.split_once('-') {
                    Some((a, b)) => (num(a)?, num(b)?),
                    None => {
                        let a = num(s)?;
                        (a, a)
                    }
                };
                if a > b {
                    return Err(format!("{s:?}: the range is empty (from > to)"));
                }
                Ok((a, b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_id_specs() {
        assert_eq!(RuleIdSpec::Id(5).range(), Ok((5, 5)));
        assert_eq!(RuleIdSpec::Range("10-20".into()).range(), Ok((10, 20)));
        assert_eq!(RuleIdSpec::Range(" 7 ".into()).range(), Ok((7, 7)));
        assert!(RuleIdSpec::Range("20-10".into()).range().is_err());
        assert!(RuleIdSpec::Range("x".into()).range().is_err());
    }
}
