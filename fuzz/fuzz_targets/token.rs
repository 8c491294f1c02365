//! A token as another service's `Verifier` reads it (the auth crate's own verifier, with a fixed public key):
//! claims or a `VerifyError`, never a panic, whatever the header, claims or signature hold.
#![no_main]

use std::sync::LazyLock;

use conductor_auth::Verifier;
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::from_public_pem(include_str!("../testdata/rsa2048.pub.pem"))
        .expect("the test key reads")
});
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    RUNTIME.block_on(async {
        let _ = VERIFIER.verify_user(token).await;
        let _ = VERIFIER.verify_any_permission(token).await;
    });
});
