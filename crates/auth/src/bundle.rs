//! The original's secrets bundle: `OS_CONDUCTOR_SECRETS_0..3`, four pieces of one base64 string of a
//! zlib-compressed JSON object holding `private.pem`, `public.pem`, `google.key` and `google.secret.key`.
//! Decoding lets deployers keep their environment; encoding lets them make one from files.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// How many variables the original split the bundle across.
pub const PIECES: usize = 4;
/// The largest decompressed bundle accepted: a few PEMs and two strings fit in far less.
const MAX_DECODED: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the secrets bundle is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the secrets bundle does not decompress (zlib): {0}")]
    Zlib(std::io::Error),
    #[error("the secrets bundle decompresses to more than {MAX_DECODED} bytes")]
    TooLarge,
    #[error("the secrets bundle is not the expected JSON object: {0}")]
    Json(#[from] serde_json::Error),
}

/// The secrets of the original service.
#[derive(Debug, Deserialize, Serialize)]
pub struct SecretsBundle {
    #[serde(rename = "private.pem", with = "secret")]
    pub private_pem: SecretString,
    #[serde(rename = "public.pem")]
    pub public_pem: String,
    /// The Google OAuth client id.
    #[serde(rename = "google.key", default, skip_serializing_if = "Option::is_none")]
    pub google_client_id: Option<String>,
    /// The Google OAuth client secret.
    #[serde(
        rename = "google.secret.key",
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_secret"
    )]
    pub google_client_secret: Option<SecretString>,
}

impl SecretsBundle {
    /// Decodes the bundle from its pieces, in order (the original concatenated `_0` to `_3`).
    pub fn decode<S: AsRef<str>>(pieces: &[S]) -> Result<Self, BundleError> {
        let joined: String = pieces.iter().map(|p| p.as_ref().trim()).collect();
        let compressed = STANDARD.decode(joined)?;
        let mut json = Vec::new();
        ZlibDecoder::new(compressed.as_slice())
            .take(MAX_DECODED + 1)
            .read_to_end(&mut json)
            .map_err(BundleError::Zlib)?;
        if json.len() as u64 > MAX_DECODED {
            return Err(BundleError::TooLarge);
        }
        Ok(serde_json::from_slice(&json)?)
    }

    /// Encodes the bundle as the original's four variables' values.
    pub fn encode(&self) -> Result<[String; PIECES], BundleError> {
        let json = serde_json::to_vec(self)?;
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&json).map_err(BundleError::Zlib)?;
        let encoded = STANDARD.encode(encoder.finish().map_err(BundleError::Zlib)?);
        let size = encoded.len().div_ceil(PIECES);
        let mut pieces: [String; PIECES] = Default::default();
        for (piece, chunk) in pieces.iter_mut().zip(encoded.as_bytes().chunks(size.max(1))) {
            *piece = String::from_utf8_lossy(chunk).into_owned();
        }
        Ok(pieces)
    }
}

mod secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value.expose_secret())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
        Ok(SecretString::from(String::deserialize(deserializer)?))
    }
}

mod optional_secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<SecretString>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => serializer.serialize_some(secret.expose_secret()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(SecretString::from))
    }
}

impl PartialEq for SecretsBundle {
    fn eq(&self, other: &Self) -> bool {
        self.private_pem.expose_secret() == other.private_pem.expose_secret()
            && self.public_pem == other.public_pem
            && self.google_client_id == other.google_client_id
            && self
                .google_client_secret
                .as_ref()
                .map(ExposeSecret::expose_secret)
                == other
                    .google_client_secret
                    .as_ref()
                    .map(ExposeSecret::expose_secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> SecretsBundle {
        SecretsBundle {
            private_pem: SecretString::from("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            public_pem: "-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----".into(),
            google_client_id: Some("123.apps.googleusercontent.com".into()),
            google_client_secret: Some(SecretString::from("g-secret")),
        }
    }

    #[test]
    fn encode_then_decode_round_trips_in_four_pieces() {
        let pieces = bundle().encode().unwrap();
        assert!(pieces.iter().all(|p| !p.is_empty()));
        assert_eq!(SecretsBundle::decode(&pieces).unwrap(), bundle());
    }

    #[test]
    fn decodes_what_the_original_tooling_wrote() {
        // What the original's to_env_vars.py does: json.dumps, zlib.compress, base64, split in four.
        let json =
            br#"{"google.key": "id", "google.secret.key": "s", "private.pem": "PRIV", "public.pem": "PUB"}"#;
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(json).unwrap();
        let encoded = STANDARD.encode(encoder.finish().unwrap());
        let (a, b) = encoded.split_at(encoded.len() / 2);
        let decoded = SecretsBundle::decode(&[a, b, "", ""]).unwrap();
        assert_eq!(decoded.private_pem.expose_secret(), "PRIV");
        assert_eq!(decoded.google_client_id.as_deref(), Some("id"));
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        assert!(matches!(
            SecretsBundle::decode(&["not base64!"]),
            Err(BundleError::Base64(_))
        ));
        assert!(matches!(
            SecretsBundle::decode(&[STANDARD.encode("plain")]),
            Err(BundleError::Zlib(_))
        ));
    }

    #[test]
    fn debug_hides_the_secrets() {
        let debug = format!("{:?}", bundle());
        assert!(!debug.contains("AAAA") && !debug.contains("g-secret"), "{debug}");
    }
}
