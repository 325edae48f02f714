//! Schema of per-route request hygiene (`[routes.hygiene]`): allowed methods, query-parameter
//! count, header deny / require / strip / allow rules, slow-body read timeout. The body-size
//! cap per route is `routes[].max_request_body`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, schema::Config, types::duration};

/// `[routes.hygiene]`: request checks of one route (all off by default).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteHygieneConfig {
    /// Allowed methods; others get 405 with `Allow` (HEAD is allowed with GET). Default: any.
    pub allowed_methods: Vec<String>,
    /// Maximum number of query parameters (400 beyond). Default: no limit.
    pub max_query_params: Option<usize>,
    /// Requests carrying any of these headers get 400. Default: none.
    pub deny_headers: Vec<String>,
    /// Requests missing any of these headers get 400. Default: none.
    pub require_headers: Vec<String>,
    /// Headers removed before the request goes upstream. Default: none.
    pub strip_headers: Vec<String>,
    /// If set, every request header not listed is removed (an allow list). Default: none.
    pub allow_headers: Option<Vec<String>>,
    /// Longest wait for the first / next request body chunk (408 beyond). Default: none.
    #[serde(with = "duration::option")]
    pub body_read_timeout: Option<Duration>,
}

/// An RFC 9110 token (header field names, methods, cookie names).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Semantic checks of every `routes[].hygiene`.
pub fn validate(c: &Config, errs: &mut Vec<ConfigError>) {
    for (i, r) in c.routes.iter().enumerate() {
        let h = &r.hygiene;
        for (j, m) in h.allowed_methods.iter().enumerate() {
            if !is_token(m) {
                errs.push(ConfigError::new(
                    format!("routes[{i}].hygiene.allowed_methods[{j}]"),
                    format!("{m:?} is not a method"),
                ));
            }
        }
        let lists = [
            ("deny_headers", &h.deny_headers),
            ("require_headers", &h.require_headers),
            ("strip_headers", &h.strip_headers),
        ];
        let allow = h.allow_headers.as_ref().map(|a| ("allow_headers", a));
        for (key, list) in lists.into_iter().chain(allow) {
            for (j, name) in list.iter().enumerate() {
                if !is_token(name) {
                    errs.push(ConfigError::new(
                        format!("routes[{i}].hygiene.{key}[{j}]"),
                        format!("{name:?} is not a valid header name"),
                    ));
                }
            }
        }
        if h.body_read_timeout.is_some_and(|d| d.is_zero()) {
            errs.push(ConfigError::new(
                format!("routes[{i}].hygiene.body_read_timeout"),
                "must be greater than 0".to_string(),
            ));
        }
    }
}
