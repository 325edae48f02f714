use std::net::SocketAddr;

use rampart_app::{RunningApp, StartOptions};
use rampart_config::{Config, Overrides};

/// The real gateway on ephemeral loopback ports.
pub struct TestProxy {
    pub app: RunningApp,
}

impl TestProxy {
    /// Start from TOML; `{upstream}` is replaced by `upstream_url`. Listeners are forced to
    /// `127.0.0.1:0` and the admin token to a fixed test value unless the TOML sets them.
    pub async fn start(toml: &str, upstream_url: &str) -> Self {
        let config = Self::config(toml, upstream_url);
        Self::start_config(config).await
    }

    /// Parse and validate like `run` does (panics with the errors on failure).
    pub fn config(toml: &str, upstream_url: &str) -> Config {
        let text = Self::config_text(toml, upstream_url);
        rampart_config::load_str(&text, &Overrides::default())
            .unwrap_or_else(|e| panic!("bad test config:\n{e}\n---\n{text}"))
    }

    /// The TOML text [`TestProxy::config`] would parse (with test defaults added).
    pub fn config_text(toml: &str, upstream_url: &str) -> String {
        let text = toml.replace("{upstream}", upstream_url);
        let mut text = text;
        if !text.contains("[server]") {
            text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{text}");
        }
        if !text.contains("[admin]") {
            text.push_str(
                "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-admin-token-0123456789\"\n",
            );
        }
        if !text.contains("[audit]") {
            text.push_str("\n[audit]\npath = \"off\"\n");
        }
        if !text.contains("[log]") {
            text.push_str("\n[log]\naccess_log = \"off\"\n");
        }
        text
    }

    /// Start from a config.
    pub async fn start_config(config: Config) -> Self {
        let app = rampart_app::start(config, StartOptions::default())
            .await
            .unwrap_or_else(|e| panic!("start failed: {e}"));
        Self { app }
    }

    /// First plain listener.
    pub fn addr(&self) -> SocketAddr {
        self.app.listen_addrs()[0]
    }

    /// `http://addr`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Admin address.
    pub fn admin(&self) -> SocketAddr {
        self.app.admin_addr().expect("admin enabled")
    }

    /// Graceful shutdown; true when drained in time.
    pub async fn shutdown(self) -> bool {
        self.app.shutdown().await
    }
}
