//! The pages for people, in headless Chromium: `/` leads to `/docs/`, whose Swagger UI lists the operations and
//! runs one; a login ends on `/logged-in`, which shows who is logged in and the token. Screenshots of each are
//! written under the test's target folder (`docs/screenshots/` holds copies for the README).

use std::path::PathBuf;
use std::time::Duration;

use conductor_tests::browser::Chrome;
use conductor_tests::spawn_app_with_test_pages;

const WAIT: Duration = Duration::from_secs(60);

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_page_leads_to_the_docs_which_list_and_run_the_operations() {
    let app = spawn_app_with_test_pages().await;
    let chrome = Chrome::start().await.expect("headless Chromium");
    chrome.goto(&app.url("/")).await.unwrap();
    chrome
        .wait_for_text("return document.getElementById('docs') ? 'page' : ''", WAIT)
        .await
        .unwrap();
    chrome.screenshot(&screenshot_path("home.png")).await.unwrap();
    chrome
        .eval("document.getElementById('docs').click(); return 'clicked'")
        .await
        .unwrap();
    // Swagger UI renders one block per operation once it has fetched /openapi.json.
    let listed = chrome
        .wait_for_text(
            "const n = document.querySelectorAll('.opblock').length; return n >= 30 ? String(n) : ''",
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        listed.parse::<usize>().unwrap() >= 30,
        "{listed} operations listed"
    );
    let address = chrome.eval("return location.pathname").await.unwrap();
    assert_eq!(address, "/docs/", "the front page's link leads to the docs");

    // Run GET /healthz from the page: open it, "Try it out", "Execute", read the live response.
    chrome
        .eval("document.querySelector('#operations-health-healthz .opblock-summary-control').click(); return 'x'")
        .await
        .unwrap();
    chrome
        .wait_for_text(
            "return document.querySelector('#operations-health-healthz .try-out__btn') ? 'y' : ''",
            WAIT,
        )
        .await
        .unwrap();
    chrome
        .eval("document.querySelector('#operations-health-healthz .try-out__btn').click(); return 'x'")
        .await
        .unwrap();
    chrome
        .wait_for_text(
            "return document.querySelector('#operations-health-healthz .execute') ? 'y' : ''",
            WAIT,
        )
        .await
        .unwrap();
    chrome
        .eval("document.querySelector('#operations-health-healthz .execute').click(); return 'x'")
        .await
        .unwrap();
    let answered = chrome
        .wait_for_text(
            "const r = document.querySelector('#operations-health-healthz .live-responses-table tr.response .response-col_status');\
             const b = document.querySelector('#operations-health-healthz .live-responses-table .microlight');\
             return r && b ? r.textContent.trim() + ' ' + b.textContent : ''",
            WAIT,
        )
        .await
        .unwrap();
    assert!(answered.starts_with("200"), "{answered}");
    assert!(answered.contains("\"ok\""), "{answered}");
    chrome.screenshot(&screenshot_path("docs.png")).await.unwrap();
    chrome
        .eval("document.querySelector('#operations-health-healthz').scrollIntoView(); return 'x'")
        .await
        .unwrap();
    chrome
        .screenshot(&screenshot_path("docs-try-it.png"))
        .await
        .unwrap();
    chrome.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_ends_on_a_page_that_shows_who_is_logged_in() {
    let app = spawn_app_with_test_pages().await;
    let chrome = Chrome::start().await.expect("headless Chromium");
    let next = app.url("/logged-in");
    chrome
        .goto(&app.url(&format!(
            "/oauth/dev/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )))
        .await
        .unwrap();
    chrome
        .wait_for_text("return document.getElementById('email') ? 'form' : ''", WAIT)
        .await
        .unwrap();
    chrome
        .eval("document.getElementById('email').value = 'ada@example.test'; document.querySelector('form').submit(); return 'sent'")
        .await
        .unwrap();
    let shown = chrome
        .wait_for_text(
            "const s = document.getElementById('in'); return s && !s.hidden ? document.getElementById('email').textContent : ''",
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(shown, "ada@example.test");
    let token = chrome
        .eval("return document.getElementById('token').value")
        .await
        .unwrap();
    let token = token.as_str().expect("the token on the page");
    let address = chrome.eval("return location.href").await.unwrap();
    assert!(
        !address.as_str().unwrap().contains("jwt="),
        "the token left the address bar: {address}"
    );
    chrome
        .screenshot(&screenshot_path("logged-in.png"))
        .await
        .unwrap();
    chrome.quit().await;
    let (_, check) = app.get_json(&format!("/user/check?jwt={token}")).await;
    assert_eq!(check["authenticated"], true, "the token shown is a real one");
}
