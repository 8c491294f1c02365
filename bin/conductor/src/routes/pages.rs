//! The few HTML pages a browser sees during login: the dev provider's form and login errors.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Conductor</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;font-size:1rem}}\
         button{{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .insert_header((
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ))
        .body(html)
}

/// A login that cannot go on, with why and what to do.
pub fn login_error(status: StatusCode, message: &str) -> HttpResponse {
    page(status, "Login failed", &format!("<p>{}</p>", escape(message)))
}

/// The `dev` provider's form: an e-mail (and optionally a name) to log in as.
pub fn dev_login_form(action: &str, next: &str) -> HttpResponse {
    let body = format!(
        "<p>Development login: no password, any e-mail. This provider only runs on a loopback address.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\" required autofocus>\
         <label for=\"name\">Name (optional)</label><input id=\"name\" name=\"name\" type=\"text\">\
         <button type=\"submit\">Log in</button></form>",
        action = escape(action),
        next = escape(next),
    );
    page(StatusCode::OK, "Log in", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
