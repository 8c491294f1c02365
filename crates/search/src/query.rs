//! `/search/<kind>`'s parameters, read as the original read them (DESIGN §8, reference §4): `q` and every
//! parameter whose first dot-segment is a registry field hold JSON values; repeated values are OR-ed; anything
//! else (`jwt`, `callback`, `_`, …) is ignored.

use conductor_core::UserId;
use serde_json::Value;

use crate::SearchError;

/// The registry fields a filter may start with.
pub const FILTERABLE: &[&str] = &["id", "model", "package", "origin_url", "loaded", "last_update"];
/// Fields whose strings match exactly (ids, owners, codes); other strings match by words, as ES's analysed
/// `match` did.
pub const EXACT: &[&str] = &[
    "id",
    "origin_url",
    "package.owner",
    "package.name",
    "package.countryCode",
    "package.regionCode",
    "package.cityCode",
];
/// The fields `q` searches, with the title boosted three times.
pub const TEXT_FIELDS: &[(&str, f32)] = &[
    ("package.title", 3.0),
    ("package.author", 1.0),
    ("package.owner", 1.0),
    ("package.description", 1.0),
    ("package.regionCode", 1.0),
    ("package.countryCode", 1.0),
    ("package.cityCode", 1.0),
];
pub const DEFAULT_SIZE: usize = 100;

/// One parameter's filter: the field (a dotted path) equals any of the values.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub field: String,
    pub values: Vec<Value>,
}

impl Filter {
    /// Whether string values of this field match exactly rather than by words.
    pub fn is_exact(&self) -> bool {
        EXACT.contains(&self.field.as_str())
    }
}

/// A parsed search.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchQuery {
    /// Free text (`q`).
    pub text: Option<String>,
    /// All must hold (each is an OR of its values).
    pub filters: Vec<Filter>,
    pub size: usize,
    /// Whose private packages are visible besides the public ones.
    pub viewer: Option<UserId>,
}

impl SearchQuery {
    /// Parses `/search/<kind>`'s parameters; `max_size` caps `size`.
    pub fn parse<'a>(
        kind: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        viewer: Option<UserId>,
        max_size: usize,
    ) -> Result<Self, SearchError> {
        if kind != "package" {
            return Err(SearchError::UnknownKind(kind.to_owned()));
        }
        let mut query = Self {
            text: None,
            filters: Vec::new(),
            size: DEFAULT_SIZE.min(max_size),
            viewer,
        };
        for (name, raw) in params {
            let json =
                || serde_json::from_str::<Value>(raw).map_err(|_| SearchError::InvalidJson(name.to_owned()));
            match name {
                "q" => match json()? {
                    Value::String(text) if text.trim().is_empty() => {}
                    Value::String(text) => query.text = Some(text),
                    Value::Null => {}
                    other => query.text = Some(other.to_string()),
                },
                "size" => {
                    let size = json()?
                        .as_u64()
                        .ok_or_else(|| SearchError::InvalidSize(raw.to_owned()))?;
                    query.size = usize::try_from(size).unwrap_or(usize::MAX).min(max_size);
                }
                _ if FILTERABLE.contains(&name.split('.').next().unwrap_or_default()) => {
                    let value = json()?;
                    match query.filters.iter_mut().find(|f| f.field == name) {
                        Some(filter) => filter.values.push(value),
                        None => query.filters.push(Filter {
                            field: name.to_owned(),
                            values: vec![value],
                        }),
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(params: &[(&str, &str)]) -> Result<SearchQuery, SearchError> {
        SearchQuery::parse("package", params.iter().copied(), None, 10_000)
    }

    #[test]
    fn registry_fields_become_filters_and_others_are_ignored() {
        let query = parse(&[
            ("q", "\"budget moldova\""),
            ("package.owner", "\"583b10ad15f2e7f078afd3431c2c09ea\""),
            ("package.countryCode", "\"MD\""),
            ("package.countryCode", "\"UK\""),
            ("loaded", "true"),
            ("package.count_of_rows", "10"),
            ("jwt", "not json at all"),
            ("callback", "cb"),
            ("_", "1600000000"),
            ("unrelated.field", "{{{"),
        ])
        .unwrap();
        assert_eq!(query.text.as_deref(), Some("budget moldova"));
        assert_eq!(query.size, DEFAULT_SIZE);
        assert_eq!(
            query.filters,
            vec![
                Filter {
                    field: "package.owner".into(),
                    values: vec![json!("583b10ad15f2e7f078afd3431c2c09ea")]
                },
                Filter {
                    field: "package.countryCode".into(),
                    values: vec![json!("MD"), json!("UK")]
                },
                Filter {
                    field: "loaded".into(),
                    values: vec![json!(true)]
                },
                Filter {
                    field: "package.count_of_rows".into(),
                    values: vec![json!(10)]
                },
            ]
        );
        assert!(
            query.filters[1].is_exact()
                && !Filter {
                    field: "package.title".into(),
                    values: vec![]
                }
                .is_exact()
        );
    }

    #[test]
    fn size_is_honoured_and_capped() {
        assert_eq!(parse(&[("size", "10")]).unwrap().size, 10);
        assert_eq!(parse(&[("size", "1000000")]).unwrap().size, 10_000);
        assert!(matches!(
            parse(&[("size", "\"ten\"")]),
            Err(SearchError::InvalidSize(_))
        ));
        assert!(matches!(
            parse(&[("size", "-1")]),
            Err(SearchError::InvalidSize(_))
        ));
    }

    #[test]
    fn invalid_json_and_unknown_kinds_are_errors() {
        assert!(matches!(parse(&[("q", "budget")]), Err(SearchError::InvalidJson(p)) if p == "q"));
        assert!(matches!(
            parse(&[("package.title", "{")]),
            Err(SearchError::InvalidJson(_))
        ));
        let unknown = SearchQuery::parse("nothing", std::iter::empty(), None, 100);
        assert!(matches!(unknown, Err(SearchError::UnknownKind(kind)) if kind == "nothing"));
    }
}
