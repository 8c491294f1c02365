//! The columnType vocabulary of os-types, in its own order (lookups by prefix take the first match, as os-types'
//! `_.find` over its keys does).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

const OS_TYPES: &str = include_str!("../data/os-types.json");

/// One columnType's properties.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnType {
    pub data_type: String,
    #[serde(default)]
    pub dimension_type: Option<String>,
    #[serde(default)]
    pub classification_type: Option<String>,
    #[serde(default)]
    pub unique_identifier: bool,
    #[serde(default)]
    pub labelfor: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
}

/// The vocabulary: os-types' 214 types and the 80 it generates (`unknown:string-N:code|label`).
#[derive(Clone, Debug)]
pub struct Vocabulary {
    types: Vec<(String, ColumnType)>,
}

struct Ordered(Vec<(String, ColumnType)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of columnTypes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut types = Vec::new();
                while let Some(entry) = map.next_entry::<String, ColumnType>()? {
                    types.push(entry);
                }
                Ok(Ordered(types))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

impl Vocabulary {
    /// The vocabulary embedded in the build.
    pub fn embedded() -> Result<Self, serde_json::Error> {
        let Ordered(mut types) = serde_json::from_str(OS_TYPES)?;
        for i in 1..=40 {
            let code = format!("unknown:string-{i}:code");
            types.push((
                code.clone(),
                ColumnType {
                    data_type: "string".into(),
                    dimension_type: Some("other".into()),
                    unique_identifier: true,
                    ..ColumnType::default()
                },
            ));
            types.push((
                format!("unknown:string-{i}:label"),
                ColumnType {
                    data_type: "string".into(),
                    dimension_type: Some("other".into()),
                    labelfor: Some(code),
                    ..ColumnType::default()
                },
            ));
        }
        Ok(Self { types })
    }

    pub fn get(&self, name: &str) -> Option<&ColumnType> {
        self.types.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The first type whose name starts with `prefix`, in the vocabulary's order.
    pub fn first_with_prefix(&self, prefix: &str) -> Option<&ColumnType> {
        self.types
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, t)| t)
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// os-types' `extra-options.js`: the options each dataType (and the `value` type) allows, with defaults.
pub fn data_type_options(data_type: &str) -> Vec<Value> {
    match data_type {
        "datetime" => {
            vec![json!({"name": "format", "title": "Format", "defaultValue": "%Y-%m-%dT%H:%M:%SZ"})]
        }
        "date" => vec![json!({"name": "format", "title": "Format", "defaultValue": "%Y-%m-%d"})],
        "time" => vec![json!({"name": "format", "title": "Format", "defaultValue": "%H:%M:%S"})],
        "number" => vec![
            json!({"name": "decimalChar", "title": "Decimal Separator", "defaultValue": ".", "trim": "false"}),
            json!({"name": "groupChar", "title": "Grouping Character", "defaultValue": ",", "trim": "false"}),
        ],
        _ => Vec::new(),
    }
}

/// The options of a columnType itself (only `value` has any).
pub fn column_type_options(column_type: &str) -> Vec<Value> {
    if column_type != "value" {
        return Vec::new();
    }
    vec![
        json!({"name": "currency", "title": "Currency", "values": []}),
        json!({"name": "factor", "title": "Factor", "type": "number"}),
        json!({"name": "direction", "title": "Direction", "values": [
            {"name": "Expenditure", "value": "expenditure"}, {"name": "Revenue", "value": "revenue"}]}),
        json!({"name": "phase", "title": "Phase", "values": [
            {"name": "Proposed", "value": "proposed"}, {"name": "Approved", "value": "approved"},
            {"name": "Adjusted", "value": "adjusted"}, {"name": "Executed", "value": "executed"}]}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_vocabulary_has_every_type() {
        let vocabulary = Vocabulary::embedded().unwrap();
        assert_eq!(vocabulary.len(), 214 + 80);
        let level2 = vocabulary
            .get("administrative-classification:generic:level2:code")
            .unwrap();
        assert!(level2.unique_identifier);
        assert_eq!(
            level2.parent.as_deref(),
            Some("administrative-classification:generic:level1:code")
        );
        assert_eq!(vocabulary.get("date:fiscal-year").unwrap().data_type, "integer");
        assert_eq!(
            vocabulary
                .get("unknown:string-40:label")
                .unwrap()
                .labelfor
                .as_deref(),
            Some("unknown:string-40:code")
        );
        assert!(vocabulary.get("nope").is_none());
    }
}
