//! The `search.*` section (DESIGN §9).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchBackend {
    /// An on-disk index under `<data_dir>/search`.
    #[default]
    Embedded,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSettings {
    pub backend: SearchBackend,
    /// The most results one search returns (the clients ask for 10000).
    pub max_size: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            backend: SearchBackend::Embedded,
            max_size: 10_000,
        }
    }
}
