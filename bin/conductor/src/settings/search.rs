//! The `search.*` section (DESIGN §9).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchBackend {
    /// An on-disk index under `<data_dir>/search`.
    #[default]
    Embedded,
    /// An OpenSearch cluster (`search.opensearch.*`).
    OpenSearch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSettings {
    pub backend: SearchBackend,
    /// The most results one search returns (the clients ask for 10000).
    pub max_size: usize,
    pub opensearch: OpenSearchSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenSearchSettings {
    /// The cluster, e.g. `http://opensearch:9200`.
    pub url: Option<url::Url>,
    /// The alias the packages index lives behind (the original's `OS_ES_PACKAGES_INDEX_NAME`).
    pub index: String,
    /// Write documents under this type (`package`) on a cluster that still has types (Elasticsearch 5 to 7,
    /// OpenSearch 1), where an unchanged os-api reads them through os-package-registry's typed endpoints.
    pub document_type: Option<String>,
}

impl Default for OpenSearchSettings {
    fn default() -> Self {
        Self {
            url: None,
            index: "packages".to_owned(),
            document_type: None,
        }
    }
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            backend: SearchBackend::Embedded,
            max_size: 10_000,
            opensearch: OpenSearchSettings::default(),
        }
    }
}
