//! Verify a Conductor permission token the way another service would, from Conductor's JWKS.
//!
//! ```sh
//! cargo run -p conductor-auth --example verify -- \
//!     http://127.0.0.1:8000/.well-known/jwks.json "$TOKEN" os.datastore datapackage-upload
//! ```
//!
//! Prints the token's claims as JSON and exits 0 when the token is valid and grants the permission for the
//! service; prints the reason and exits 1 otherwise. Add a fifth argument to require that issuer (`iss`).

#![allow(clippy::print_stdout, reason = "a command-line example prints its result")]

use std::process::ExitCode;

use conductor_auth::Verifier;
use url::Url;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_url, token, service, permission, rest @ ..] = args.as_slice() else {
        eprintln!("usage: verify <jwks-url> <token> <service> <permission> [issuer]");
        return ExitCode::from(2);
    };
    let url = match Url::parse(jwks_url) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("{jwks_url}: {error}");
            return ExitCode::from(2);
        }
    };
    let verifier = match Verifier::from_jwks_url(url).await {
        Ok(verifier) => verifier,
        Err(error) => {
            eprintln!("cannot load the keys: {error}");
            return ExitCode::FAILURE;
        }
    };
    let verifier = match rest.first() {
        Some(issuer) => verifier.with_issuer(issuer.clone()),
        None => verifier,
    };
    match verifier.verify_permission(token, service, permission).await {
        Ok(claims) => {
            println!("{}", serde_json::to_string_pretty(&claims).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("refused: {error}");
            ExitCode::FAILURE
        }
    }
}
