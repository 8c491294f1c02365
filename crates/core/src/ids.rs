//! Identifiers that validate on construction, so raw strings stop at the request types.

use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a user id is 32 lower-case hex characters, got {0:?}")]
    UserId(String),
    #[error(
        "a dataset name is 1 to 200 characters of a-z, 0-9, '_', '-' and '.', not starting with '.', got {0:?}"
    )]
    DatasetName(String),
    #[error("a package id is `<owner>:<dataset>`, got {0:?}")]
    PackageId(String),
}

/// A user's id: the md5 hex of the trimmed, lower-cased e-mail (the original's `idhash`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// The id a login with this e-mail gets. Identical to the original for the lower-case addresses providers return.
    pub fn from_email(email: &str) -> Self {
        let digest = Md5::digest(email.trim().to_lowercase().as_bytes());
        Self(hex::encode(digest))
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let valid = raw.len() == 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::UserId(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The dataset part of a package id: a descriptor `name` already slugged and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DatasetName(String);

impl DatasetName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.');
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && !raw.starts_with('.')
            && raw.bytes().all(allowed);
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::DatasetName(raw.to_owned()))
        }
    }

    /// A descriptor `name` as the package id and the datastore prefix use it: ASCII-folded, lower-cased,
    /// `-` and `.` kept, every other run of characters one `_`, no leading or trailing `_` or `.`.
    pub fn slug(raw: &str) -> Result<Self, IdError> {
        let folded = deunicode::deunicode(raw).to_lowercase();
        let mut slug = String::with_capacity(folded.len());
        for c in folded.chars() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                slug.push(c);
            } else if !slug.ends_with('_') {
                slug.push('_');
            }
        }
        let slug = slug.trim_matches(|c| c == '_' || c == '.');
        Self::parse(slug).map_err(|_| IdError::DatasetName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A package id, `<owner>:<dataset>`, the same string in the registry, the search index and the API.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageId {
    owner: UserId,
    dataset: DatasetName,
}

impl PackageId {
    pub fn new(owner: UserId, dataset: DatasetName) -> Self {
        Self { owner, dataset }
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let invalid = || IdError::PackageId(raw.to_owned());
        let (owner, dataset) = raw.split_once(':').ok_or_else(invalid)?;
        Ok(Self {
            owner: UserId::parse(owner).map_err(|_| invalid())?,
            dataset: DatasetName::parse(dataset).map_err(|_| invalid())?,
        })
    }

    pub fn owner(&self) -> &UserId {
        &self.owner
    }

    pub fn dataset(&self) -> &DatasetName {
        &self.dataset
    }
}

impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.owner, self.dataset)
    }
}

impl Serialize for PackageId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PackageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_is_md5_of_trimmed_lowercased_email() {
        // md5("info@okfn.org"), the original's seed user.
        let id = UserId::from_email("  Info@OKFN.org ");
        assert_eq!(id.as_str(), hex::encode(Md5::digest(b"info@okfn.org")));
        assert_eq!(UserId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn user_id_rejects_anything_but_32_lower_hex() {
        for bad in [
            "",
            "*",
            "583B10AD15F2E7F078AFD3431C2C09EA",
            "583b10ad15f2e7f078afd3431c2c09e",
            "../x",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn package_id_round_trips() {
        let id = PackageId::parse("583b10ad15f2e7f078afd3431c2c09ea:test2").unwrap();
        assert_eq!(id.dataset().as_str(), "test2");
        assert_eq!(id.to_string(), "583b10ad15f2e7f078afd3431c2c09ea:test2");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"583b10ad15f2e7f078afd3431c2c09ea:test2\""
        );
    }

    #[test]
    fn descriptor_names_slug_as_the_original_did() {
        let slug = |raw: &str| DatasetName::slug(raw).map(|d| d.as_str().to_owned());
        assert_eq!(slug("boost-moldova").unwrap(), "boost-moldova");
        assert_eq!(slug("My Budget 2014.v2").unwrap(), "my_budget_2014.v2");
        assert_eq!(slug("Économie / Finances").unwrap(), "economie_finances");
        assert_eq!(slug("../../etc/passwd").unwrap(), "etc_passwd");
        assert!(slug("").is_err());
        assert!(slug("///").is_err());
    }

    #[test]
    fn dataset_names_keep_dash_and_dot_but_nothing_unsafe() {
        assert!(DatasetName::parse("boost-moldova_2014.v2").is_ok());
        for bad in ["", ".hidden", "a/b", "A", "a b", "a:b", &"x".repeat(201)] {
            assert!(DatasetName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
