//! The `columnType` of each field of an older package: its `osType` with the `:full`/`:part` suffix the
//! vocabulary later dropped, else what its place in the stated model says (a measure is a `value`; a label is
//! the label type of its code; a child level is the next level of its parent; the first level of a
//! classification with a `classificationType` is that classification's `level1:code`; a date of a datetime
//! dimension is a date), else `unknown:<its Table Schema type>`, which keeps the field in its dimension without
//! claiming a meaning the package never gave it.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::TypedField;
use crate::descriptor::Problem;
use crate::vocabulary::Vocabulary;

/// The measure options FDP 0.3 states on a measure and the current form states on its field.
const MEASURE_OPTIONS: [&str; 4] = ["currency", "factor", "direction", "phase"];

fn problem(field: Option<&str>, message: String) -> Problem {
    Problem {
        field: field.map(str::to_owned),
        message,
    }
}

/// The current columnType an `osType` names: itself, or itself without the `:full`/`:part` suffix.
fn from_os_type(vocabulary: &Vocabulary, os_type: &str) -> Option<String> {
    if vocabulary.get(os_type).is_some() {
        return Some(os_type.to_owned());
    }
    let stripped = os_type
        .strip_suffix(":full")
        .or_else(|| os_type.strip_suffix(":part"))?;
    vocabulary.get(stripped).map(|_| stripped.to_owned())
}

/// The label type of a code type (`…:code` → `…:label`), when the vocabulary has one.
fn label_of(vocabulary: &Vocabulary, code: &str) -> Option<String> {
    let label = format!("{}:label", code.strip_suffix(":code")?);
    let listed = vocabulary.get(&label)?;
    (listed.labelfor.as_deref() == Some(code)).then_some(label)
}

/// The next level's code type under a code type (`…:levelN:code` → `…:level{N+1}:code`), when the vocabulary has
/// it with that parent.
fn child_of(vocabulary: &Vocabulary, parent: &str) -> Option<String> {
    let (prefix, rest) = parent.rsplit_once(":level")?;
    let level: u32 = rest.strip_suffix(":code")?.parse().ok()?;
    let child = format!("{prefix}:level{}:code", level + 1);
    let listed = vocabulary.get(&child)?;
    (listed.parent.as_deref() == Some(parent)).then_some(child)
}

/// The `unknown:*` type of a Table Schema type (booleans and the rest read as text).
fn unknown_of(table_schema_type: &str) -> String {
    let data_type = match table_schema_type {
        "integer" | "number" | "date" | "time" | "datetime" => table_schema_type,
        _ => "string",
    };
    format!("unknown:{data_type}")
}

/// One attribute of the stated model, by its dimension.
struct Attribute<'a> {
    dimension: &'a str,
    name: &'a str,
    source: &'a str,
    labelfor: Option<&'a str>,
    parent: Option<&'a str>,
}

/// Every field's translated type, by field name.
pub(super) fn column_types(
    vocabulary: &Vocabulary,
    fields: &[Value],
    model: Option<&Value>,
) -> Result<HashMap<String, TypedField>, Vec<Problem>> {
    let table_types: HashMap<&str, &str> = fields
        .iter()
        .filter_map(|f| Some((f["name"].as_str()?, f["type"].as_str().unwrap_or("string"))))
        .collect();
    let table_type = |name: &str| table_types.get(name).copied().unwrap_or("string");
    let known = |name: &str| table_types.contains_key(name);
    let mut problems = Vec::new();
    let mut typed: HashMap<String, TypedField> = HashMap::new();
    for field in fields {
        let (Some(name), Some(os_type)) = (field["name"].as_str(), field["osType"].as_str()) else {
            continue;
        };
        match from_os_type(vocabulary, os_type) {
            Some(column_type) => {
                typed.insert(
                    name.to_owned(),
                    TypedField {
                        column_type,
                        options: Map::new(),
                    },
                );
            }
            None => problems.push(problem(
                Some(name),
                format!("the osType {os_type:?} has no columnType in the vocabulary"),
            )),
        }
    }

    let empty = Map::new();
    let model = model.unwrap_or(&Value::Null);
    for (measure, entry) in model["measures"].as_object().unwrap_or(&empty) {
        let Some(source) = entry["source"].as_str() else {
            problems.push(problem(None, format!("measure {measure:?} has no source")));
            continue;
        };
        if !known(source) {
            problems.push(problem(
                None,
                format!("measure {measure:?}: its source {source:?} is not a field of the resource"),
            ));
            continue;
        }
        let options: Map<String, Value> = MEASURE_OPTIONS
            .iter()
            .filter_map(|key| entry.get(*key).map(|v| ((*key).to_owned(), v.clone())))
            .collect();
        typed.insert(
            source.to_owned(),
            TypedField {
                column_type: "value".into(),
                options,
            },
        );
    }

    let mut attributes = Vec::new();
    let mut kinds: HashMap<&str, (Option<&str>, Option<&str>)> = HashMap::new();
    for (dimension, entry) in model["dimensions"].as_object().unwrap_or(&empty) {
        kinds.insert(
            dimension,
            (
                entry["dimensionType"].as_str(),
                entry["classificationType"].as_str(),
            ),
        );
        for (name, attribute) in entry["attributes"].as_object().unwrap_or(&empty) {
            let Some(source) = attribute["source"].as_str() else {
                let why = if attribute.get("constant").is_some() {
                    "is a constant: only attributes read from a column are loaded"
                } else {
                    "has no source"
                };
                problems.push(problem(
                    None,
                    format!("dimension {dimension:?} attribute {name:?} {why}"),
                ));
                continue;
            };
            if !known(source) {
                problems.push(problem(
                    None,
                    format!(
                        "dimension {dimension:?} attribute {name:?}: its source {source:?} is not a field of the \
                         resource"
                    ),
                ));
                continue;
            }
            attributes.push(Attribute {
                dimension,
                name,
                source,
                labelfor: attribute["labelfor"].as_str(),
                parent: attribute["parent"].as_str(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Types flow from codes to their labels and from parents to children: repeat until nothing more is learnt
    // (each round learns at least one type, so at most one round per attribute, each linear).
    let source_of: HashMap<(&str, &str), &str> = attributes
        .iter()
        .map(|a| ((a.dimension, a.name), a.source))
        .collect();
    let type_of = |typed: &HashMap<String, TypedField>, dimension: &str, attribute: &str| {
        source_of
            .get(&(dimension, attribute))
            .and_then(|source| typed.get(*source))
            .map(|t| t.column_type.clone())
    };
    loop {
        let mut learnt = Vec::new();
        for attribute in attributes.iter().filter(|a| !typed.contains_key(a.source)) {
            let (dimension_type, classification) = kinds[attribute.dimension];
            let found = if let Some(code) = attribute.labelfor {
                type_of(&typed, attribute.dimension, code).and_then(|t| label_of(vocabulary, &t))
            } else if let Some(parent) = attribute.parent {
                type_of(&typed, attribute.dimension, parent).and_then(|t| child_of(vocabulary, &t))
            } else if let Some(classification) = classification {
                let root = format!("{classification}-classification:generic:level1:code");
                vocabulary.get(&root).map(|_| root)
            } else if dimension_type == Some("datetime") {
                match table_type(attribute.source) {
                    "date" => Some("date:generic".to_owned()),
                    "integer" if format!("{} {}", attribute.name, attribute.source).contains("year") => {
                        Some("date:fiscal-year".to_owned())
                    }
                    _ => None,
                }
            } else {
                None
            };
            if let Some(column_type) = found {
                learnt.push((attribute.source, column_type));
            }
        }
        if learnt.is_empty() {
            break;
        }
        for (source, column_type) in learnt {
            typed.insert(
                source.to_owned(),
                TypedField {
                    column_type,
                    options: Map::new(),
                },
            );
        }
    }
    for attribute in &attributes {
        typed
            .entry(attribute.source.to_owned())
            .or_insert_with(|| TypedField {
                column_type: unknown_of(table_type(attribute.source)),
                options: Map::new(),
            });
    }

    // A date with no format of its own: older packages wrote dates as they came (`dd/mm/yyyy` in FDP's own
    // examples), so the translation says `any` rather than claim ISO.
    for field in fields {
        let Some(name) = field["name"].as_str() else {
            continue;
        };
        let Some(typed) = typed.get_mut(name) else {
            continue;
        };
        let is_date = vocabulary
            .get(&typed.column_type)
            .is_some_and(|t| t.data_type == "date");
        let stated = field["format"].as_str().filter(|f| *f != "default");
        if is_date && stated.is_none() {
            typed.options.insert("format".into(), json!("any"));
        }
    }
    Ok(typed)
}
