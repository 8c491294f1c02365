//! The catalogue's older descriptors in the current form, before anything plans them (reference §2.1): fields
//! described with the pre-2018 `osType` get the `columnType` it became, and a Fiscal Data Package 0.3 `model`
//! (called `mapping` before 0.3-alpha9) gives every field it names a `columnType` where the vocabulary has an
//! equivalent. The package's own model stays in the descriptor as its `model` (its dimension and measure names,
//! `labelfor`, `parent` and primary keys as stated; `stated.rs` reads it), so a translated package and the
//! output of `conductor package convert` load alike. What cannot be translated is a problem naming the
//! dimension or attribute.

mod types;

use serde_json::{Map, Value, json};

use crate::descriptor::{MAX_FIELDS, Problem};
use crate::stated::attribute_count;
use crate::vocabulary::Vocabulary;

/// Which form a descriptor was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Fields with `columnType` (or nothing this module recognises).
    Current,
    /// Fields with the pre-2018 `osType`.
    OsType,
    /// A Fiscal Data Package 0.3 `model` or `mapping` and no per-field types.
    Fdp03,
}

/// A descriptor in the current form, and the form it came in.
#[derive(Clone, Debug, PartialEq)]
pub struct Translated {
    pub descriptor: Value,
    pub form: Form,
}

fn problem(message: String) -> Problem {
    Problem { field: None, message }
}

fn fields_of(resource: &Value) -> &[Value] {
    resource["schema"]["fields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The descriptor in the current form: unchanged when it is already, translated when it is older.
pub fn translate(vocabulary: &Vocabulary, descriptor: &Value) -> Result<Translated, Vec<Problem>> {
    let resources = descriptor["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let has = |key: &str| resources.iter().flat_map(fields_of).any(|f| f.get(key).is_some());
    let current = || Translated {
        descriptor: descriptor.clone(),
        form: Form::Current,
    };
    if has("columnType") {
        return Ok(current());
    }
    let stated = descriptor
        .get("model")
        .or_else(|| descriptor.get("mapping"))
        .filter(|m| m.is_object());
    let form = if has("osType") {
        Form::OsType
    } else if stated.is_some() {
        Form::Fdp03
    } else {
        return Ok(current());
    };
    // The resource the facts come from: the first one with an osType field, else the first one (FDP 0.3: an
    // attribute without `resource` reads the first resource).
    let index = resources
        .iter()
        .position(|r| fields_of(r).iter().any(|f| f.get("osType").is_some()))
        .unwrap_or(0);
    let Some(resource) = resources.get(index) else {
        return Err(vec![problem("the datapackage has no resources".into())]);
    };
    // Translation grows with fields and attributes; both are bounded before any of it, as a load bounds fields.
    let attributes = stated.map_or(0, attribute_count);
    let fields = fields_of(resource).len();
    if fields.max(attributes) > MAX_FIELDS {
        return Err(vec![problem(format!(
            "the resource has {fields} fields and the model {attributes} attributes; at most {MAX_FIELDS} of \
             each are loaded"
        ))]);
    }
    let model = match stated {
        Some(model) => Some(normalized_model(model, resources, index)?),
        None => None,
    };
    let typed = types::column_types(vocabulary, fields_of(resource), model.as_ref())?;

    let mut out = descriptor.clone();
    let Some(package) = out.as_object_mut() else {
        return Ok(current());
    };
    package.remove("mapping");
    match model {
        Some(model) => package.insert("model".into(), model),
        None => package.remove("model"),
    };
    if let Some(fields) = out["resources"][index]["schema"]["fields"].as_array_mut() {
        for field in fields.iter_mut().filter_map(Value::as_object_mut) {
            field.remove("osType");
            let name = field.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some(typed) = typed.get(name) else {
                continue;
            };
            field.insert("columnType".into(), json!(typed.column_type));
            for (key, value) in &typed.options {
                // The field's own option wins; a `format` of `default` says nothing.
                let own = field.get(key).filter(|v| v.as_str() != Some("default"));
                if own.is_none() {
                    field.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Ok(Translated {
        descriptor: out,
        form,
    })
}

/// The stated model in its current shape: `mapping`'s content under `model`, every `primaryKey` a list, and
/// every source in the fact resource (a dimension kept in another resource, joined by a foreign key, is refused:
/// the loader reads one resource, as the original pipeline did).
fn normalized_model(model: &Value, resources: &[Value], index: usize) -> Result<Value, Vec<Problem>> {
    let fact_name = resources[index]["name"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    let mut out = model.clone();
    let elsewhere = |owner: &str, entry: &Value, problems: &mut Vec<Problem>| {
        let Some(other) = entry.get("resource").and_then(Value::as_str) else {
            return;
        };
        if other == fact_name {
            return;
        }
        let key = resources[index]["foreignKeys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["reference"]["resource"].as_str() == Some(other))
            .map(|k| {
                format!(
                    " (the foreign key {} → {other}.{} joins it to {fact_name:?})",
                    fields_text(&k["fields"]),
                    fields_text(&k["reference"]["fields"]),
                )
            })
            .unwrap_or_default();
        problems.push(problem(format!(
            "{owner} reads from resource {other:?}{key}: dimensions kept in another resource are not loaded \
             (only the fact resource {fact_name:?} is); join {other:?} into {fact_name:?} and upload again"
        )));
    };
    if let Some(dimensions) = out["dimensions"].as_object_mut() {
        for (name, dimension) in dimensions.iter_mut() {
            // One problem per dimension: its attributes come from one other resource or another.
            let other = dimension["attributes"]
                .as_object()
                .into_iter()
                .flat_map(|a| a.values())
                .find(|a| {
                    a.get("resource")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r != fact_name)
                });
            if let Some(entry) = other {
                elsewhere(&format!("dimension {name:?}"), entry, &mut problems);
            }
            if let Some(key @ Value::String(_)) = dimension.get("primaryKey").cloned() {
                dimension["primaryKey"] = json!([key]);
            }
        }
    }
    if let Some(measures) = out["measures"].as_object() {
        for (name, entry) in measures {
            elsewhere(&format!("measure {name:?}"), entry, &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A foreign key's `fields` (a name or a list of names) as text.
fn fields_text(fields: &Value) -> String {
    match fields {
        Value::String(name) => name.clone(),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// A field's translated type: its `columnType` and the options that come with it (a measure's currency, a
/// date's format).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TypedField {
    pub column_type: String,
    pub options: Map<String, Value>,
}

#[cfg(test)]
mod tests;
