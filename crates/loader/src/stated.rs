//! A package's own `model` as the model a load uses. In a Fiscal Data Package the model is the package's word on
//! its structure; the `columnType`s only type the values (and build a model with os-types when the package
//! states none, as os-packager's uploads leave it to). The stated dimension and measure names, `labelfor`,
//! `parent` and primary keys are kept; each attribute is keyed by its column, because os-api's Babbage model
//! names a dimension by its key attribute and older packages reuse names such as `name` and `label` in every
//! dimension. Every reference is checked, and a problem names the dimension, attribute or measure.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::babbage::hierarchy_name;
use crate::descriptor::{LoadPlan, Problem};
use crate::fdp::FdpModel;

fn problem(message: String) -> Problem {
    Problem { field: None, message }
}

/// The names in a `primaryKey`: one name or a list of them.
fn names(value: &Value) -> Vec<&str> {
    match value {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// How many attributes a model's dimensions hold in all (what bounds the work of reading it).
pub(crate) fn attribute_count(model: &Value) -> usize {
    model["dimensions"]
        .as_object()
        .map(|d| {
            d.values()
                .filter_map(|d| d["attributes"].as_object())
                .map(Map::len)
                .sum()
        })
        .unwrap_or(0)
}

/// The model `stated` describes, over the planned fields and their os-types schema.
pub fn stated_model(stated: &Value, plan: &LoadPlan, fdp: &FdpModel) -> Result<Value, Vec<Problem>> {
    // Each entry reads a column of its own, so a model with more entries than the loaded fields cannot be right;
    // refusing it first keeps the checks below bounded whatever the descriptor holds.
    let entries = stated["measures"].as_object().map_or(0, Map::len) + attribute_count(stated);
    if entries > plan.fields.len() {
        return Err(vec![problem(format!(
            "the model has {entries} measures and attributes for {} loaded fields; each reads a column of its own",
            plan.fields.len()
        ))]);
    }
    let column_of: HashMap<&str, &str> = plan
        .fields
        .iter()
        .map(|f| (f.original.as_str(), f.input.name.as_str()))
        .collect();
    let schema = &fdp.schema["fields"];
    let mut problems = Vec::new();
    let mut users: HashMap<String, String> = HashMap::new();
    let mut claim = |column: &str, user: String, problems: &mut Vec<Problem>| {
        if let Some(first) = users.get(column) {
            problems.push(problem(format!(
                "{user} and {first} read the same column {column:?}; a column belongs to one attribute or measure"
            )));
        } else {
            users.insert(column.to_owned(), user);
        }
    };
    let column = |owner: &str, entry: &Value, problems: &mut Vec<Problem>| -> Option<String> {
        let Some(source) = entry["source"].as_str() else {
            problems.push(problem(format!("{owner} has no source")));
            return None;
        };
        match column_of.get(source) {
            Some(column) => Some((*column).to_owned()),
            None => {
                problems.push(problem(format!(
                    "{owner}: its source {source:?} is not a field with a columnType in the loaded resource"
                )));
                None
            }
        }
    };
    let empty = Map::new();

    let mut measures = Map::new();
    for (name, entry) in stated["measures"].as_object().unwrap_or(&empty) {
        let owner = format!("measure {name:?}");
        let Some(column) = column(&owner, entry, &mut problems) else {
            continue;
        };
        claim(&column, owner.clone(), &mut problems);
        // The os-types measure of that column carries its title and options; only a `value` field has one.
        let computed = fdp.model["measures"]
            .as_object()
            .and_then(|m| m.values().find(|m| m["source"].as_str() == Some(&column)));
        match computed {
            Some(measure) => {
                measures.insert(name.clone(), measure.clone());
            }
            None => problems.push(problem(format!(
                "{owner}: its field is not a measure (columnType `value`)"
            ))),
        }
    }
    if measures.is_empty() && problems.is_empty() {
        problems.push(problem("the model states no measure".into()));
    }

    let mut dimensions = Map::new();
    let mut hierarchies: HashMap<String, String> = HashMap::new();
    for (name, entry) in stated["dimensions"].as_object().unwrap_or(&empty) {
        let hierarchy = hierarchy_name(name);
        if hierarchy.is_empty() {
            problems.push(problem(format!(
                "dimension {name:?}: its name has no letter or digit to name its table column"
            )));
        } else if let Some(first) = hierarchies.insert(hierarchy.clone(), name.clone()) {
            problems.push(problem(format!(
                "dimensions {first:?} and {name:?} both name the column {hierarchy}_id"
            )));
        }
        let stated_attributes = entry["attributes"].as_object().unwrap_or(&empty);
        if stated_attributes.is_empty() {
            problems.push(problem(format!("dimension {name:?} has no attributes")));
        }
        let mut keys: HashMap<&str, String> = HashMap::new();
        for (attribute, entry) in stated_attributes {
            let owner = format!("dimension {name:?} attribute {attribute:?}");
            if let Some(column) = column(&owner, entry, &mut problems) {
                claim(&column, owner, &mut problems);
                keys.insert(attribute.as_str(), column);
            }
        }
        let mut attributes = Map::new();
        for (attribute, entry) in stated_attributes {
            let Some(column) = keys.get(attribute.as_str()) else {
                continue;
            };
            let title = entry["title"]
                .as_str()
                .filter(|t| !t.is_empty())
                .or_else(|| schema[column]["title"].as_str())
                .unwrap_or(column);
            let mut out = Map::new();
            out.insert("source".into(), json!(column));
            out.insert("title".into(), json!(title));
            for link in ["labelfor", "parent"] {
                let Some(target) = entry[link].as_str() else {
                    continue;
                };
                match keys.get(target) {
                    Some(target) => {
                        out.insert(link.into(), json!(target));
                    }
                    None => problems.push(problem(format!(
                        "dimension {name:?} attribute {attribute:?}: its {link} {target:?} is not an attribute \
                         of the dimension"
                    ))),
                }
            }
            attributes.insert(column.clone(), Value::Object(out));
        }
        let mut primary_key = Vec::new();
        for key in names(&entry["primaryKey"]) {
            match keys.get(key) {
                Some(column) => primary_key.push(json!(column)),
                None => problems.push(problem(format!(
                    "dimension {name:?}: its primaryKey {key:?} is not an attribute of the dimension"
                ))),
            }
        }
        if primary_key.is_empty() {
            // os-types' rule for a dimension with no identifier: every attribute.
            primary_key = attributes.keys().map(|k| json!(k)).collect();
        }
        let mut dimension = Map::new();
        dimension.insert(
            "dimensionType".into(),
            entry
                .get("dimensionType")
                .cloned()
                .unwrap_or_else(|| json!("other")),
        );
        dimension.insert("primaryKey".into(), Value::Array(primary_key));
        dimension.insert("attributes".into(), Value::Object(attributes));
        if let Some(classification) = entry.get("classificationType") {
            dimension.insert("classificationType".into(), classification.clone());
        }
        dimensions.insert(name.clone(), Value::Object(dimension));
    }
    for name in measures.keys() {
        if users
            .get(name.as_str())
            .is_some_and(|user| user.starts_with("dimension"))
        {
            problems.push(problem(format!(
                "measure {name:?} has the name of an attribute's column; os-api could not tell them apart"
            )));
        }
    }
    if problems.is_empty() {
        Ok(json!({"dimensions": dimensions, "measures": measures}))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Vocabulary;
    use crate::descriptor::plan;
    use crate::fdp::fields_to_model;

    use super::*;

    /// The stated model's problems over a resource of fields `a`, `b` (text) and `amount` (a measure).
    fn problems(model: Value) -> Vec<String> {
        let vocabulary = Vocabulary::embedded().unwrap();
        let descriptor = json!({"name": "x", "resources": [{"schema": {"fields": [
            {"name": "a", "columnType": "unknown:string"}, {"name": "b", "columnType": "unknown:string"},
            {"name": "amount", "columnType": "value"}]}}]});
        let planned = plan(&vocabulary, &descriptor).unwrap();
        let inputs: Vec<_> = planned.fields.iter().map(|f| f.input.clone()).collect();
        let fdp = fields_to_model(&vocabulary, &inputs).unwrap();
        match stated_model(&model, &planned, &fdp) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_sound_model_passes_and_each_wrong_reference_is_named() {
        let measures = json!({"total": {"source": "amount"}});
        assert_eq!(
            problems(json!({"measures": measures, "dimensions": {"d": {"attributes": {
                "code": {"source": "a"}, "label": {"source": "b", "labelfor": "code"}}, "primaryKey": "code"}}})),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(json!({"measures": measures, "dimensions": {"d": {"attributes": {
                "code": {"source": "a"}, "label": {"source": "b", "labelfor": "nothing", "parent": "code"}},
                "primaryKey": ["code", "gone"]}}})),
            [
                "dimension \"d\" attribute \"label\": its labelfor \"nothing\" is not an attribute of the dimension",
                "dimension \"d\": its primaryKey \"gone\" is not an attribute of the dimension",
            ]
        );
        assert_eq!(
            problems(json!({"measures": {"total": {"source": "a"}}, "dimensions": {
                "d": {"attributes": {"x": {"source": "b"}}}, "e": {"attributes": {"y": {"source": "b"}}}}})),
            [
                "measure \"total\": its field is not a measure (columnType `value`)",
                "dimension \"e\" attribute \"y\" and dimension \"d\" attribute \"x\" read the same column \"b\"; a \
                 column belongs to one attribute or measure",
            ]
        );
        assert_eq!(
            problems(json!({"measures": {}, "dimensions": {"d": {"attributes": {"x": {"source": "a"}}}}})),
            ["the model states no measure"]
        );
        let many: serde_json::Map<String, Value> = (0..4)
            .map(|i| (format!("m{i}"), json!({"source": "amount"})))
            .collect();
        assert_eq!(
            problems(json!({"measures": many, "dimensions": {}})),
            ["the model has 4 measures and attributes for 3 loaded fields; each reads a column of its own"]
        );
    }
}
