//! Rules for URL paths compared as prefixes (the login allow-list, the loader's and hooks' allow-lists).

/// Whether a URL path hides a `/`, `\` or `.` behind percent-encoding. `/allowed/..%2fsecret` is under
/// `/allowed/` as text, and somewhere else to a server that decodes it, so a prefix rule cannot vouch for it.
pub fn hides_separator(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["%2f", "%5c", "%2e"]
        .iter()
        .any(|encoded| lower.contains(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_separators_and_dots_are_seen() {
        for hidden in ["/a/..%2fb", "/a/%2E%2E/b", "/a/..%5Cb", "/a/%2fb"] {
            assert!(hides_separator(hidden), "{hidden}");
        }
        for plain in ["/a/b", "/a/b%20c", "/a/%25", "/a/b.csv"] {
            assert!(!hides_separator(plain), "{plain}");
        }
    }
}
