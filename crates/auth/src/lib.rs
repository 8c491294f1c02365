//! Conductor's identity and access crate, usable on its own by other Rust services.
//!
//! - [`keys`]: the RS256 key set, with RFC 7638 `kid`s, retired keys and development keys.
//! - [`tokens`]: issuing and verifying user and permission tokens.
//! - [`verifier`]: a [`Verifier`] for services that accept Conductor's permission tokens (from a PEM or a JWKS
//!   URL), and with the `actix` feature an actix-web extractor.
//! - [`redirect`]: the login redirect allow-list.
//! - [`bundle`]: the original service's `OS_CONDUCTOR_SECRETS_0..3` bundle.
//! - [`oidc`]: the OpenID Connect login flow.
//! - [`account`]: what the `/user` endpoints do, with the short-lived caches of [`recent`].
//! - [`api_keys`]: personal API keys for scripts, rate-limited through the [`rate`] counter port.

pub mod account;
#[cfg(feature = "actix")]
pub mod actix;
pub mod api_keys;
pub mod bundle;
pub mod keys;
pub mod oidc;
pub mod rate;
pub mod recent;
pub mod redirect;
pub mod tokens;
pub mod verifier;

pub use account::{AccountError, Accounts, Authorization};
pub use api_keys::{ApiKeyError, ApiKeys, is_api_key};
pub use bundle::SecretsBundle;
pub use keys::{KeyError, KeySet, PublicKey};
pub use redirect::{RedirectAllowlist, RedirectError, deliver_token};
pub use tokens::{PermissionClaims, TokenError, TokenIssuer, TokenPolicy, UserClaims};
pub use verifier::{Verifier, VerifyError, request_token};

/// The name of the development login provider (DESIGN §5).
pub const DEV_PROVIDER: &str = "dev";
