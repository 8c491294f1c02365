//! Where a login may send the browser back to: `next` must fall under `auth.redirect_allowlist`, compared as
//! parsed URLs (scheme, host, port, then a path prefix), never as strings.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("redirect allow-list entry {0:?} is not an absolute http(s) URL")]
    BadEntry(String),
    #[error("next is not an http(s) URL or a path on this site")]
    NotAUrl,
    #[error("next must not carry credentials")]
    Credentials,
    #[error("next is not under any address in auth.redirect_allowlist")]
    NotAllowed,
}

/// The allowed redirect targets: each an origin with an optional path prefix.
#[derive(Clone, Debug)]
pub struct RedirectAllowlist {
    entries: Vec<Url>,
}

impl RedirectAllowlist {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, RedirectError> {
        let entries = entries
            .iter()
            .map(|raw| {
                let raw = raw.as_ref();
                match Url::parse(raw) {
                    Ok(url)
                        if matches!(url.scheme(), "http" | "https")
                            && url.host().is_some()
                            && url.username().is_empty()
                            && url.password().is_none() =>
                    {
                        Ok(url)
                    }
                    _ => Err(RedirectError::BadEntry(raw.to_owned())),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The origins (`scheme://host[:port]`) of the entries: what CORS allows by default.
    pub fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self
            .entries
            .iter()
            .map(|u| u.origin().ascii_serialization())
            .collect();
        origins.dedup();
        origins
    }

    /// Resolves `next` (absolute, or a path starting with one `/`, taken against `base`) and checks it.
    pub fn check(&self, next: &str, base: &Url) -> Result<Url, RedirectError> {
        let next = next.trim();
        // Only a plain absolute path is relative: "//host" is a scheme-relative URL to another host,
        // and a backslash is read as a slash by browsers.
        let url = if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
            base.join(next).map_err(|_| RedirectError::NotAUrl)?
        } else {
            Url::parse(next).map_err(|_| RedirectError::NotAUrl)?
        };
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(RedirectError::NotAUrl);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectError::Credentials);
        }
        if self.entries.iter().any(|entry| under(&url, entry)) {
            Ok(url)
        } else {
            Err(RedirectError::NotAllowed)
        }
    }
}

/// Same origin, and the path is the entry's path or below it (at a segment boundary).
fn under(url: &Url, entry: &Url) -> bool {
    if url.origin() != entry.origin() {
        return false;
    }
    let prefix = entry.path();
    let path = url.path();
    if prefix == "/" {
        return true;
    }
    if conductor_core::url_path::hides_separator(path) {
        return false;
    }
    path == prefix || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
}

/// `next` with the token added: in the fragment (the default, so it never reaches a server log or a Referer), or
/// in the query as the original did (os-packager's `logged-in.html` reads `location.search`).
pub fn deliver_token(mut next: Url, token: &str, in_query: bool) -> Url {
    if in_query {
        let kept: Vec<(String, String)> = next
            .query_pairs()
            .filter(|(k, _)| k != "jwt")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        next.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("jwt", token);
    } else {
        let fragment = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("jwt", token)
            .finish();
        next.set_fragment(Some(&fragment));
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowlist() -> RedirectAllowlist {
        RedirectAllowlist::new(&["https://allowed.example/", "http://127.0.0.1:8000/packager/"]).unwrap()
    }

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8000/").unwrap()
    }

    #[test]
    fn allowed_targets_pass() {
        let list = allowlist();
        for ok in [
            "https://allowed.example/",
            "https://allowed.example/admin/?x=1",
            "https://ALLOWED.example:443/viewer",
            "http://127.0.0.1:8000/packager/",
            "http://127.0.0.1:8000/packager/logged-in.html",
            "/packager/logged-in",
        ] {
            assert!(list.check(ok, &base()).is_ok(), "{ok} refused");
        }
    }

    #[test]
    fn lookalikes_and_other_schemes_are_refused() {
        let list = allowlist();
        for bad in [
            "https://allowed.example.evil.test/",
            "https://allowed.example@evil.test/",
            "https://user:pw@allowed.example/",
            "//evil.test/",
            "/\\evil.test",
            "javascript:alert(1)",
            "data:text/html,hi",
            "http://allowed.example/",
            "https://allowed.example:8443/",
            "http://127.0.0.1:8000/packagerx",
            "http://127.0.0.1:8000/packager/..%2fadmin",
            "/packager/..%5Cadmin",
            "/packager/%2e%2e%2fadmin",
            "http://127.0.0.1:8000/",
            "/other",
            "",
            "evil.test",
        ] {
            assert!(list.check(bad, &base()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn entries_must_be_absolute_http_urls() {
        assert!(RedirectAllowlist::new(&["/relative"]).is_err());
        assert!(RedirectAllowlist::new(&["javascript:x"]).is_err());
        assert_eq!(
            allowlist().origins(),
            ["https://allowed.example", "http://127.0.0.1:8000"]
        );
    }

    #[test]
    fn the_token_goes_in_the_fragment_or_the_query() {
        let next = Url::parse("https://allowed.example/p?a=1&jwt=old#x").unwrap();
        assert_eq!(
            deliver_token(next.clone(), "t.o.k", false).as_str(),
            "https://allowed.example/p?a=1&jwt=old#jwt=t.o.k"
        );
        assert_eq!(
            deliver_token(next, "t.o.k", true).as_str(),
            "https://allowed.example/p?a=1&jwt=t.o.k#x"
        );
    }
}
