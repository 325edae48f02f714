//! TLS termination: certificates from PEM files, chosen by SNI.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use rustls::{
    crypto::ring,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// A TLS setup problem (bad file, bad key), reported at config load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("certificate {path}: {reason}")]
    Cert {
        /// File path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read or is not a supported private key.
    #[error("private key {path}: {reason}")]
    Key {
        /// File path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(String),
}

/// One certificate to serve, as given in config.
#[derive(Debug, Clone)]
pub struct CertSource<'a> {
    /// PEM chain path.
    pub cert: &'a Path,
    /// PEM key path.
    pub key: &'a Path,
    /// Explicit SNI names; empty = taken from the certificate's subjectAltName.
    pub server_names: &'a [String],
}

/// Picks the certificate for a ClientHello: exact SNI name, then `*.parent` wildcard, then
/// the default (first) certificate.
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.clone());
        }
        Some(self.default.clone())
    }
}

/// Load the certificates and build a rustls server config (ALPN `h2` + `http/1.1`, or
/// `http/1.1` only).
pub fn server_config(
    certs: &[CertSource<'_>],
    http2: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for src in certs {
        let (chain, names) = load_chain(src.cert)?;
        let key = load_key(src.key)?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Key {
                path: src.key.display().to_string(),
                reason: e.to_string(),
            })?;
        let ck = Arc::new(CertifiedKey::new(chain, signing));
        let names = if src.server_names.is_empty() {
            names
        } else {
            src.server_names.to_vec()
        };
        for n in names {
            let n = n.to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(parent) => wildcard
                    .entry(parent.to_string())
                    .or_insert_with(|| ck.clone()),
                None => exact.entry(n).or_insert_with(|| ck.clone()),
            };
        }
        default.get_or_insert(ck);
    }
    let default = default.ok_or_else(|| TlsError::Config("no certificate configured".into()))?;
    let resolver = SniResolver {
        exact,
        wildcard,
        default,
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

fn load_chain(path: &Path) -> Result<(Vec<CertificateDer<'static>>, Vec<String>), TlsError> {
    let err = |reason: String| TlsError::Cert {
        path: path.display().to_string(),
        reason,
    };
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| err("no PEM certificate found".into()))?;
    let names = san_names(leaf).map_err(err)?;
    Ok((chain, names))
}

fn san_names(der: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("cannot parse certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    Ok(names)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_cert_and_reads_san_names() {
        let dir = std::env::temp_dir().join(format!("rampart-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec![
            "a.example.com".into(),
            "*.b.example.com".into(),
        ])
        .unwrap();
        let cert = dir.join("c.pem");
        let key = dir.join("k.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let (_, names) = load_chain(&cert).unwrap();
        assert_eq!(names, ["a.example.com", "*.b.example.com"]);
        let cfg = server_config(
            &[CertSource {
                cert: &cert,
                key: &key,
                server_names: &[],
            }],
            true,
        )
        .unwrap();
        assert_eq!(cfg.alpn_protocols[0], b"h2");
        let bad = server_config(
            &[CertSource {
                cert: &key,
                key: &key,
                server_names: &[],
            }],
            true,
        );
        assert!(matches!(bad, Err(TlsError::Cert { .. })), "{bad:?}");
    }
}
