//! Rampart's configuration: the user-facing TOML schema, its defaults, and its validation.
//!
//! Loading runs one pipeline ([`load::load_str`]), used by both `rampart run` and
//! `rampart check`:
//!
//! 1. parse the TOML (syntax errors carry line and column);
//! 2. substitute `${VAR}` in string values (an undefined variable is an error);
//! 3. apply `RAMPART_*` environment overrides to scalar keys
//!    (`RAMPART_SERVER__MAX_CONNECTIONS=5000` sets `server.max_connections`);
//! 4. deserialize into the schema with unknown keys refused (the nearest valid key is
//!    suggested); every structural error is collected, not just the first;
//! 5. validate cross-references and values ([`validate`]).
//!
//! Every error names the dotted key path and, when the key is in the file, its line and
//! column: `routes[1].upstream: unknown upstream "api" (line 14, column 12)`.
//!
//! The schema types ([`schema`]) are also the typed config handed to `rampart-app`; human
//! durations and sizes are parsed into [`std::time::Duration`] and [`ByteSize`] here, and
//! secrets are wrapped in [`Secret`] so they never print.

pub mod auth;
pub mod compress;
pub mod error;
pub mod guard;
pub mod hygiene;
pub mod load;
pub mod schema;
mod span;
pub mod statics;
pub mod types;
pub mod upstream;
pub mod validate;
pub mod waf;

pub use auth::*;
pub use compress::{CompressionConfig, LevelsConfig, RouteCompressionConfig};
pub use error::{ConfigError, ConfigErrors};
pub use guard::*;
pub use hygiene::RouteHygieneConfig;
pub use load::{Overrides, load_file, load_str, load_str_unvalidated};
pub use schema::*;
pub use statics::*;
pub use types::{ByteSize, Secret};
pub use upstream::*;
pub use waf::{RuleIdSpec, WafExclusionConfig};
