//! Object keys that cannot escape their prefix: `<owner>/<dataset>/<relative path>`.

use std::fmt;

use conductor_core::{DatasetName, UserId};

/// The longest object key accepted, in bytes (S3 allows 1024).
pub const MAX_KEY_LEN: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path must be relative")]
    Absolute,
    #[error("the path must not contain a backslash")]
    Backslash,
    #[error("the path must not contain `..` or `.` segments")]
    DotSegment,
    #[error("the path must not contain empty segments")]
    EmptySegment,
    #[error("the path must not contain percent-encoding")]
    PercentEncoded,
    #[error("the path must not contain control characters")]
    ControlCharacter,
    #[error("the object key would be longer than {MAX_KEY_LEN} bytes")]
    TooLong,
}

/// A file's path inside its data package, as the client named it: relative, `/`-separated, nothing that a
/// server, a browser or an S3 implementation could read as leaving the package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelativePath(String);

impl RelativePath {
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if raw.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if raw.contains('\\') {
            return Err(PathError::Backslash);
        }
        // `%2e%2e` decodes to `..` somewhere down the line; no legitimate file name needs a `%`.
        if raw.contains('%') {
            return Err(PathError::PercentEncoded);
        }
        for segment in raw.split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                _ => {}
            }
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(PathError::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A full object key under its owner's and dataset's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn new(owner: &UserId, dataset: &DatasetName, path: &RelativePath) -> Result<Self, PathError> {
        let key = format!("{owner}/{dataset}/{}", path.as_str());
        if key.len() > MAX_KEY_LEN {
            Err(PathError::TooLong)
        } else {
            Ok(Self(key))
        }
    }

    /// A key from a URL path (the local datastore's PUT and GET): the same rules, and an owner and dataset first.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let relative = RelativePath::parse(raw)?;
        let mut segments = relative.as_str().splitn(3, '/');
        let owner = segments.next().and_then(|o| UserId::parse(o).ok());
        let dataset = segments.next().and_then(|d| DatasetName::parse(d).ok());
        match (owner, dataset, segments.next()) {
            (Some(owner), Some(dataset), Some(rest)) => {
                Self::new(&owner, &dataset, &RelativePath::parse(rest)?)
            }
            _ => Err(PathError::DotSegment),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a URL path: each segment percent-encoded, `/` kept.
    pub fn url_path(&self) -> String {
        let segments: Vec<String> = self
            .0
            .split('/')
            .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect())
            .collect();
        // Form encoding writes a space as `+` (a literal `+` as `%2B`); a path reads `+` literally.
        segments.join("/").replace('+', "%20")
    }

    /// The key's owner (its first segment).
    pub fn owner(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_accepted() {
        for ok in [
            "datapackage.json",
            "data/budget 2014.csv",
            "a/b/c.csv",
            "Ünïcode.csv",
            "x..y.csv",
        ] {
            assert!(RelativePath::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn every_escape_is_refused() {
        let cases = [
            ("", PathError::Empty),
            ("../x.csv", PathError::DotSegment),
            ("a/../../x", PathError::DotSegment),
            ("./x", PathError::DotSegment),
            ("a/..", PathError::DotSegment),
            ("/etc/passwd", PathError::Absolute),
            ("a\\..\\x", PathError::Backslash),
            ("%2e%2e/x", PathError::PercentEncoded),
            ("%2E%2E/x", PathError::PercentEncoded),
            ("a%2fb", PathError::PercentEncoded),
            ("a//b", PathError::EmptySegment),
            ("a/", PathError::EmptySegment),
            ("a\0b", PathError::ControlCharacter),
            ("a\nb", PathError::ControlCharacter),
            ("a\u{7f}b", PathError::ControlCharacter),
        ];
        for (raw, expected) in cases {
            assert_eq!(RelativePath::parse(raw), Err(expected), "{raw:?}");
        }
        assert_eq!(
            RelativePath::parse(&"x".repeat(MAX_KEY_LEN + 1)),
            Err(PathError::TooLong)
        );
        let owner = UserId::from_email("ada@example.test");
        let dataset = DatasetName::parse("d").unwrap();
        let long = RelativePath::parse(&"x".repeat(MAX_KEY_LEN - 10)).unwrap();
        assert_eq!(
            ObjectKey::new(&owner, &dataset, &long),
            Err(PathError::TooLong),
            "the whole key is bounded"
        );
    }

    #[test]
    fn keys_from_urls_need_an_owner_and_a_dataset() {
        let owner = UserId::from_email("ada@example.test");
        let key = ObjectKey::parse(&format!("{owner}/budget/data/x.csv")).unwrap();
        assert_eq!(key.owner(), owner.as_str());
        for bad in [
            "x.csv",
            "notanowner/budget/x.csv",
            &format!("{owner}/x.csv"),
            &format!("{owner}/budget/../x"),
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad}");
        }
    }
}
