//! `/user/lib` in a real browser: headless Chromium loads a page served by the gateway, logs in through the
//! `dev` provider, and ends with the token stored and the library reporting the profile.

use std::time::Duration;

use conductor_core::UserId;
use conductor_tests::browser::Chrome;
use conductor_tests::spawn_app_with_test_pages;
use serde_json::Value;

async fn log_in_through(page: &str, email: &str) {
    let app = spawn_app_with_test_pages().await;
    let chrome = Chrome::start().await.expect("headless Chromium");
    chrome
        .goto(&app.url(&format!("/test-pages/{page}")))
        .await
        .unwrap();
    // The page sends the browser to the dev provider's form; a person fills it in and posts it.
    chrome
        .wait_for_text(
            "return document.getElementById('email') ? 'form' : ''",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    chrome
        .eval(&format!(
            "document.getElementById('email').value = {}; document.querySelector('form').submit(); return 'sent'",
            serde_json::to_string(email).unwrap()
        ))
        .await
        .unwrap();
    let result = chrome
        .wait_for_text(
            "const r = document.getElementById('result'); return r ? r.textContent : ''",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    chrome.quit().await;

    let result: Value = serde_json::from_str(&result).unwrap();
    assert!(result.get("error").is_none(), "{page}: {result}");
    let token = result["token"].as_str().expect("a token");
    assert_eq!(
        result["stored"],
        Value::String(serde_json::to_string(token).unwrap()),
        "stored JSON-encoded"
    );
    assert_eq!(
        result["profile"]["idhash"],
        UserId::from_email(email).as_str(),
        "{page}"
    );
    assert_eq!(result["profile"]["email"], email);
    assert_eq!(result["permissions"]["datapackage-upload"], true);
    let address = result["address"].as_str().unwrap();
    assert!(
        !address.contains("jwt="),
        "the token is removed from the address bar: {address}"
    );
    // The stored token is a real one.
    let (_, check) = app.get_json(&format!("/user/check?jwt={token}")).await;
    assert_eq!(check["authenticated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_angular_library_logs_in_and_keeps_the_token() {
    log_in_through("angular.html", "ada@example.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_es_module_logs_in_and_keeps_the_token() {
    log_in_through("esm.html", "bob@example.test").await;
}
