//! The key set (DESIGN §5): one RS256 signing key and the public keys of earlier ones, each with a `kid` that is
//! its RFC 7638 thumbprint. Keys under 2048 bits are refused.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};

/// The smallest RSA modulus accepted, in bits (RFC 8725 §3.5, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// The size of keys `keys generate` and development start-up make: 2048 bits, the RS256 norm (and what Google
/// signs with). Signing a permission token per `/user/authorize` costs about three times as much at 3072 bits.
const GENERATED_KEY_SIZE: KeySize = KeySize::Rsa2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is not a PEM-encoded RSA key: {detail}")]
    Parse { what: String, detail: String },
    #[error("{what} is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required")]
    TooSmall { what: String, bits: usize },
    #[error("the configured public key does not belong to the private key")]
    Mismatch,
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("key generation failed")]
    Generate,
}

/// A public key as it is published and used to verify: its `kid`, its JWK and its PEM.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    decoding: DecodingKey,
    jwk: Jwk,
    pem: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Reads a PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`); `what` names it in errors.
    pub fn from_pem(pem: &str, what: &str) -> Result<Self, KeyError> {
        let parse = |detail: String| KeyError::Parse {
            what: what.to_owned(),
            detail,
        };
        let decoding = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| parse(e.to_string()))?;
        let jwk =
            Jwk::from_decoding_key(&decoding, Some(Algorithm::RS256)).map_err(|e| parse(e.to_string()))?;
        Self::from_parts(decoding, jwk, normalise_pem(pem), what)
    }

    fn from_parts(decoding: DecodingKey, mut jwk: Jwk, pem: String, what: &str) -> Result<Self, KeyError> {
        let bits = modulus_bits(&jwk).ok_or_else(|| KeyError::Parse {
            what: what.to_owned(),
            detail: "not an RSA key".to_owned(),
        })?;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooSmall {
                what: what.to_owned(),
                bits,
            });
        }
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| KeyError::Parse {
                what: what.to_owned(),
                detail: e.to_string(),
            })?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self {
            kid,
            decoding,
            jwk,
            pem,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    fn same_key(&self, other: &Self) -> bool {
        self.kid == other.kid
    }
}

/// The signing key and what is published: the current public key first, then retired ones.
pub struct KeySet {
    encoding: EncodingKey,
    current: PublicKey,
    retired: Vec<PublicKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("current", &self.current.kid)
            .field(
                "retired",
                &self.retired.iter().map(PublicKey::kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A freshly generated key pair as PEM text, for `keys generate` and the development key files.
#[derive(Debug)]
pub struct GeneratedKeys {
    pub private_pem: SecretString,
    pub public_pem: String,
}

impl KeySet {
    /// The key set of a private key (PKCS#8 or PKCS#1 PEM), checked against `public_pem` when one is given, with
    /// `retired` public keys still published for verification.
    pub fn from_pems(
        private_pem: &str,
        public_pem: Option<&str>,
        retired: Vec<PublicKey>,
    ) -> Result<Self, KeyError> {
        let what = "the private key";
        let parse = |detail: String| KeyError::Parse {
            what: what.to_owned(),
            detail,
        };
        let pair = parse_private_key(private_pem).map_err(parse)?;
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(|e| parse(e.to_string()))?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| parse("no public key".to_owned()))?;
        let derived_pem = encode_pem("PUBLIC KEY", spki.as_ref());
        let current = PublicKey::from_pem(&derived_pem, what)?;
        if let Some(configured) = public_pem {
            let configured = PublicKey::from_pem(configured, "the public key")?;
            if !configured.same_key(&current) {
                return Err(KeyError::Mismatch);
            }
        }
        let retired = retired
            .into_iter()
            .filter(|key| !key.same_key(&current))
            .collect();
        Ok(Self {
            encoding,
            current,
            retired,
        })
    }

    /// Reads the private key (and optionally its public key) from files.
    pub fn from_files(
        private: &Path,
        public: Option<&Path>,
        retired: Vec<PublicKey>,
    ) -> Result<Self, KeyError> {
        let private_pem = SecretString::from(read(private)?);
        let public_pem = public.map(read).transpose()?;
        Self::from_pems(private_pem.expose_secret(), public_pem.as_deref(), retired)
    }

    /// A new RSA key pair.
    pub fn generate() -> Result<GeneratedKeys, KeyError> {
        let pair = KeyPair::generate(GENERATED_KEY_SIZE).map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
        let spki = pair.public_key().as_der().map_err(|_| KeyError::Generate)?;
        Ok(GeneratedKeys {
            private_pem: SecretString::from(encode_pem("PRIVATE KEY", pkcs8.as_ref())),
            public_pem: encode_pem("PUBLIC KEY", spki.as_ref()),
        })
    }

    /// The development key pair under `dir` (`private.pem`, `public.pem`), generated on first use, with the
    /// `retired` public keys still published. Only for development: production configures its keys.
    pub fn development(dir: &Path, retired: Vec<PublicKey>) -> Result<Self, KeyError> {
        let private = dir.join("private.pem");
        let public = dir.join("public.pem");
        if !private.exists() {
            let generated = Self::generate()?;
            fs::create_dir_all(dir).map_err(|source| KeyError::Write {
                path: dir.to_owned(),
                source,
            })?;
            write_private(&private, generated.private_pem.expose_secret())?;
            fs::write(&public, &generated.public_pem).map_err(|source| KeyError::Write {
                path: public.clone(),
                source,
            })?;
            tracing::info!(path = %private.display(), "generated a development signing key");
        }
        Self::from_files(&private, Some(&public), retired)
    }

    pub fn current(&self) -> &PublicKey {
        &self.current
    }

    pub fn retired(&self) -> &[PublicKey] {
        &self.retired
    }

    /// The JWKS: the current key, then the retired ones.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: std::iter::once(&self.current)
                .chain(&self.retired)
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// The key with this `kid`, looked up in memory only; without a `kid`, the current key.
    pub(crate) fn verifying_key(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match kid {
            None => Some(&self.current.decoding),
            Some(kid) => std::iter::once(&self.current)
                .chain(&self.retired)
                .find(|key| key.kid == kid)
                .map(PublicKey::decoding_key),
        }
    }

    pub(crate) fn signing_key(&self) -> (&str, &EncodingKey) {
        (&self.current.kid, &self.encoding)
    }
}

fn parse_private_key(pem_text: &str) -> Result<KeyPair, String> {
    let parsed = pem::parse(pem_text.trim()).map_err(|e| e.to_string())?;
    let pair = match parsed.tag() {
        "PRIVATE KEY" => KeyPair::from_pkcs8(parsed.contents()),
        "RSA PRIVATE KEY" => KeyPair::from_der(parsed.contents()),
        other => return Err(format!("unexpected PEM block {other:?}")),
    };
    pair.map_err(|e| e.to_string())
}

fn modulus_bits(jwk: &Jwk) -> Option<usize> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    let n = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
    let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
    let first = *n.first()?;
    Some(n.len() * 8 - first.leading_zeros() as usize)
}

fn encode_pem(tag: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}

fn normalise_pem(pem: &str) -> String {
    format!("{}\n", pem.trim())
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, pem: &str) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(pem.as_bytes()).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_with_a_thumbprint_kid() {
        let generated = KeySet::generate().unwrap();
        let keys = KeySet::from_pems(
            generated.private_pem.expose_secret(),
            Some(&generated.public_pem),
            vec![],
        )
        .unwrap();
        let kid = keys.current().kid().to_owned();
        assert_eq!(kid.len(), 43, "base64url of a SHA-256");
        let jwks = serde_json::to_value(keys.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kid"].as_str(), key["alg"].as_str(), key["use"].as_str()),
            (Some(kid.as_str()), Some("RS256"), Some("sig"))
        );
        assert_eq!(key["kty"], "RSA");
        assert!(keys.verifying_key(Some(&kid)).is_some());
        assert!(keys.verifying_key(Some("../../etc/passwd")).is_none());
    }

    #[test]
    fn a_public_key_of_another_pair_is_refused() {
        let a = KeySet::generate().unwrap();
        let b = KeySet::generate().unwrap();
        let mismatch = KeySet::from_pems(a.private_pem.expose_secret(), Some(&b.public_pem), vec![]);
        assert!(matches!(mismatch, Err(KeyError::Mismatch)));
    }

    #[test]
    fn retired_keys_are_published_after_the_current_one() {
        let old = KeySet::generate().unwrap();
        let new = KeySet::generate().unwrap();
        let retired = PublicKey::from_pem(&old.public_pem, "old").unwrap();
        let keys = KeySet::from_pems(new.private_pem.expose_secret(), None, vec![retired.clone()]).unwrap();
        let kids: Vec<_> = keys
            .jwks()
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap())
            .collect();
        assert_eq!(kids, [keys.current().kid().to_owned(), retired.kid().to_owned()]);
        assert!(keys.verifying_key(Some(retired.kid())).is_some());
    }

    #[test]
    fn the_development_pair_publishes_retired_keys_too() {
        let dir = tempfile::tempdir().unwrap();
        let old = KeySet::generate().unwrap();
        let retired = PublicKey::from_pem(&old.public_pem, "old").unwrap();
        let keys = KeySet::development(dir.path(), vec![retired.clone()]).unwrap();
        assert_eq!(keys.jwks().keys.len(), 2, "the current key and the retired one");
        assert!(keys.verifying_key(Some(retired.kid())).is_some());
    }

    #[test]
    fn small_keys_and_garbage_are_refused() {
        // A 1024-bit key (generated with `openssl genrsa 1024`), which must never sign.
        let small = include_str!("../testdata/rsa1024.pem");
        let error = KeySet::from_pems(small, None, vec![]).unwrap_err();
        assert!(
            matches!(
                error,
                KeyError::TooSmall { bits: 1024, .. } | KeyError::Parse { .. }
            ),
            "{error}"
        );
        assert!(matches!(
            KeySet::from_pems("not a key", None, vec![]),
            Err(KeyError::Parse { .. })
        ));
        let small_public = PublicKey::from_pem(include_str!("../testdata/rsa1024.pub.pem"), "retired key");
        assert!(
            matches!(small_public, Err(KeyError::TooSmall { bits: 1024, .. })),
            "{small_public:?}"
        );
    }

    #[test]
    fn development_keys_are_generated_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::development(dir.path(), Vec::new()).unwrap();
        let again = KeySet::development(dir.path(), Vec::new()).unwrap();
        assert_eq!(first.current().kid(), again.current().kid());
        let mode = fs::metadata(dir.path().join("private.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
