//! The loading pipeline: parse, substitute, override, deserialize, validate.

use std::{collections::HashMap, path::Path};

use crate::{
    ConfigError, ConfigErrors,
    schema::Config,
    span::{Seg, Spans, parse as parse_path, render},
    validate,
};

/// Inputs from the environment: variables for `${VAR}` substitution and `RAMPART_*` overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Environment variables.
    pub vars: HashMap<String, String>,
}

impl Overrides {
    /// Take everything from the process environment.
    pub fn from_env() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// Use exactly these variables (tests).
    pub fn with_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Read and load a config file (see [`load_str`]).
pub fn load_file(path: &Path, env: &Overrides) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(ConfigError::new(
            "(file)",
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    load_str(&text, env)
}

/// Load a config from TOML text: every step of the pipeline, all errors collected.
pub fn load_str(text: &str, env: &Overrides) -> Result<Config, ConfigErrors> {
    load_inner(text, env, true)
}

/// Like [`load_str`] without the final semantic validation, for callers that complete the
/// config first (CLI flags) and then call [`crate::validate::validate`] themselves.
pub fn load_str_unvalidated(text: &str, env: &Overrides) -> Result<Config, ConfigErrors> {
    load_inner(text, env, false)
}

fn load_inner(text: &str, env: &Overrides, semantic: bool) -> Result<Config, ConfigErrors> {
    let spans = Spans::new(text);
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let mut err = ConfigError::new("(file)", format!("invalid toml: {}", e.message()));
            err.location = e.span().map(|s| spans.line_col(s.start));
            return Err(ConfigErrors::one(err));
        }
    };
    let mut errors = Vec::new();
    substitute(&mut table, &mut Vec::new(), env, &mut errors);
    let env_paths = apply_env_overrides(&mut table, env, &mut errors);

    let mut value = toml::Value::Table(table);
    let mut config = None;
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let mut path = to_segs(e.path());
                let raw = e.inner().message().to_string();
                let (message, unknown_key) = rewrite_message(&raw);
                if let Some(k) = &unknown_key
                    && path.last() != Some(&Seg::Key(k.clone()))
                {
                    path.push(Seg::Key(k.clone()));
                }
                let rendered = render(&path);
                let mut err = ConfigError::new(rendered.clone(), message);
                if let Some(var) = env_paths.get(&rendered) {
                    err.message.push_str(&format!(" (set by {var})"));
                } else {
                    err.location = spans.locate(&path, unknown_key.is_some());
                }
                errors.push(err);
                if !remove_deepest_key(&mut value, &path) {
                    break;
                }
            }
        }
    }
    let Some(config) = config else {
        return Err(sorted(errors));
    };
    if errors.is_empty() && semantic {
        errors.extend(validate::validate(&config));
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        for e in errors.iter_mut().filter(|e| e.location.is_none()) {
            if env_paths.contains_key(&e.path) {
                continue;
            }
            e.location = spans.locate(&parse_path(&e.path), false);
        }
        Err(sorted(errors))
    }
}

/// Errors in file order; those without a location (environment, whole file) first.
fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| e.location);
    ConfigErrors(errors)
}

fn to_segs(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// Turn serde's "unknown field `x`, expected one of `a`, `b`" into
/// "unknown key `x`; did you mean `a`?". Returns the message and the unknown key, if any.
fn rewrite_message(raw: &str) -> (String, Option<String>) {
    let Some(rest) = raw.strip_prefix("unknown field `") else {
        return (raw.to_string(), None);
    };
    let Some((key, tail)) = rest.split_once('`') else {
        return (raw.to_string(), None);
    };
    let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let best = valid
        .iter()
        .map(|v| (strsim::jaro_winkler(key, v), *v))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let msg = match best {
        Some((_, v)) => format!("unknown key `{key}`; did you mean `{v}`?"),
        None if valid.is_empty() => format!("unknown key `{key}`; this table takes no keys"),
        None => format!("unknown key `{key}`; valid keys: {}", valid.join(", ")),
    };
    (msg, Some(key.to_string()))
}

/// Remove the deepest table key on `path`, so deserialization can go on and report the next
/// problem. Returns false when nothing could be removed.
fn remove_deepest_key(value: &mut toml::Value, path: &[Seg]) -> bool {
    let Some(last_key) = path.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let mut cur = value;
    for seg in &path[..last_key] {
        cur = match (cur, seg) {
            (toml::Value::Table(t), Seg::Key(k)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (toml::Value::Array(a), Seg::Index(i)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (cur, &path[last_key]) {
        (toml::Value::Table(t), Seg::Key(k)) => t.remove(k).is_some(),
        _ => false,
    }
}

/// Replace `${VAR}` in every string value; `$${` is a literal `${`.
fn substitute(
    table: &mut toml::Table,
    path: &mut Vec<Seg>,
    env: &Overrides,
    errors: &mut Vec<ConfigError>,
) {
    for (k, v) in table.iter_mut() {
        path.push(Seg::Key(k.clone()));
        substitute_value(v, path, env, errors);
        path.pop();
    }
}

fn substitute_value(
    v: &mut toml::Value,
    path: &mut Vec<Seg>,
    env: &Overrides,
    errors: &mut Vec<ConfigError>,
) {
    match v {
        toml::Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(out) => *s = out,
            Err(msg) => errors.push(ConfigError::new(render(path), msg)),
        },
        toml::Value::Table(t) => substitute(t, path, env, errors),
        toml::Value::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                substitute_value(item, path, env, errors);
                path.pop();
            }
        }
        _ => {}
    }
}

fn expand(s: &str, env: &Overrides) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated variable reference in {s:?}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid variable name {name:?} in ${{...}}"));
        }
        let val = env
            .vars
            .get(name)
            .ok_or_else(|| format!("environment variable {name} is not defined"))?;
        out.push_str(val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Apply `RAMPART_A__B=value` as `a.b = value` for scalar keys. Returns rendered path -> var.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: &Overrides,
    errors: &mut Vec<ConfigError>,
) -> HashMap<String, String> {
    let mut applied = HashMap::new();
    let mut vars: Vec<_> = env
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("RAMPART_") && k.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let keys: Vec<String> = name["RAMPART_".len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        if keys.iter().any(String::is_empty) {
            errors.push(ConfigError::new(
                name.clone(),
                "malformed override variable name",
            ));
            continue;
        }
        let rendered = keys.join(".");
        match set_scalar(table, &keys, raw) {
            Ok(()) => {
                applied.insert(rendered, name.clone());
            }
            Err(msg) => errors.push(ConfigError::new(rendered, format!("{name}: {msg}"))),
        }
    }
    applied
}

/// Set `keys` (a table path) to the scalar `raw`, creating tables on the way.
fn set_scalar(table: &mut toml::Table, keys: &[String], raw: &str) -> Result<(), String> {
    let Some((first, rest)) = keys.split_first() else {
        return Err("empty key".into());
    };
    if rest.is_empty() {
        let new = match table.get(first) {
            Some(toml::Value::Table(_) | toml::Value::Array(_)) => {
                return Err(
                    "only scalar keys can be overridden; this one is a table or array".into(),
                );
            }
            Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
            _ => scalar(raw),
        };
        table.insert(first.clone(), new);
        return Ok(());
    }
    match table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
    {
        toml::Value::Table(t) => set_scalar(t, rest, raw),
        _ => Err(format!(
            "cannot override inside `{first}`, which is not a table"
        )),
    }
}

fn scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else if let Ok(f) = raw.parse::<f64>() {
        toml::Value::Float(f)
    } else {
        toml::Value::String(raw.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Overrides {
        Overrides::with_vars([("TOKEN", "s3cret"), ("PORT", "9000")])
    }

    #[test]
    fn empty_config_is_defaults_but_needs_a_route() {
        let errs = load_str("", &env()).unwrap_err();
        assert_eq!(errs.0[0].path, "routes");
    }

    #[test]
    fn substitution_and_escape() {
        assert_eq!(expand("a${TOKEN}b", &env()).unwrap(), "as3cretb");
        assert_eq!(expand("$${TOKEN}", &env()).unwrap(), "${TOKEN}");
        assert!(
            expand("${NOPE}", &env())
                .unwrap_err()
                .contains("NOPE is not defined")
        );
        assert!(expand("${OPEN", &env()).is_err());
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let (m, k) = rewrite_message("unknown field `lisen`, expected one of `listen`, `http2`");
        assert_eq!(k.as_deref(), Some("lisen"));
        assert_eq!(m, "unknown key `lisen`; did you mean `listen`?");
    }

    #[test]
    fn all_structural_errors_are_reported() {
        let text = "[server]\nlisen = []\nmax_connections = \"many\"\n[log]\nformat = \"xml\"\n";
        let errs = load_str(text, &env()).unwrap_err();
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["server.lisen", "server.max_connections", "log.format"],
            "{errs}"
        );
        assert_eq!(errs.0[0].location, Some((2, 1)));
    }

    #[test]
    fn env_overrides_scalars() {
        let text = "[[upstreams]]\nname = \"a\"\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nupstream = \"a\"\n";
        let env = Overrides::with_vars([
            ("RAMPART_SERVER__MAX_CONNECTIONS", "7"),
            ("RAMPART_LOG__LEVEL", "debug"),
        ]);
        let c = load_str(text, &env).unwrap();
        assert_eq!(c.server.max_connections, 7);
        assert_eq!(c.log.level, "debug");
        let bad = Overrides::with_vars([("RAMPART_SERVER__MAX_CONNECTIONS", "lots")]);
        let errs = load_str(text, &bad).unwrap_err();
        assert!(
            errs.0[0]
                .message
                .contains("RAMPART_SERVER__MAX_CONNECTIONS"),
            "{errs}"
        );
        let arr = Overrides::with_vars([("RAMPART_SERVER__LISTEN", "x")]);
        assert!(load_str(text, &arr).is_err());
    }
}
