//! From a datapackage descriptor to what the loader works on: the first resource whose fields carry
//! `columnType`, each such field's column name, title and options, checked with messages a person can act on.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::columns::column_names;
use crate::fdp::InputField;
use crate::vocabulary::{Vocabulary, column_type_options, data_type_options};

/// One problem with a package, naming where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field concerned, if any.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field {field:?}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A field of the loaded resource: its name in the CSV, its column in the database, and its model input.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedField {
    pub original: String,
    pub input: InputField,
}

/// What to load from a package.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadPlan {
    pub name: String,
    pub title: String,
    /// The index of the resource in `resources`.
    pub resource: usize,
    pub fields: Vec<PlannedField>,
}

/// The options os-types knows for some type: one given on a field whose type does not take it is a mistake worth
/// naming (other keys, such as Table Schema's `description` or `format`, are simply not options).
/// The most fields a loaded resource may have: real fiscal packages have tens, and every later step (models,
/// tables, the registry record) grows with them.
pub const MAX_FIELDS: usize = 1000;

const OPTION_NAMES: [&str; 6] = [
    "decimalChar",
    "groupChar",
    "currency",
    "factor",
    "direction",
    "phase",
];

fn problem(field: Option<&str>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.map(str::to_owned),
        message: message.into(),
    }
}

/// Reads a descriptor into a load plan, or every problem found.
pub fn plan(vocabulary: &Vocabulary, descriptor: &Value) -> Result<LoadPlan, Vec<Problem>> {
    let name = descriptor
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty());
    let name = name
        .ok_or_else(|| vec![problem(None, "the datapackage has no name")])?
        .to_owned();
    let title = descriptor
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(&name)
        .to_owned();
    let resources = descriptor
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let fields_of = |resource: &Value| {
        resource["schema"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let chosen = resources
        .iter()
        .position(|r| fields_of(r).iter().any(|f| f.get("columnType").is_some()));
    let Some(resource) = chosen else {
        let legacy_types = resources
            .iter()
            .flat_map(fields_of)
            .any(|f| f.get("osType").is_some());
        let message = if legacy_types {
            "this package describes its fields with `osType` (the format before 2018); translate it first \
             (`conductor package convert` prints the current form)"
        } else if descriptor
            .get("model")
            .or_else(|| descriptor.get("mapping"))
            .is_some()
        {
            "this is a Fiscal Data Package 0.3 (a top-level `model`, no `columnType` on the fields); translate it \
             first (`conductor package convert` prints the current form)"
        } else if resources.is_empty() {
            "the datapackage has no resources"
        } else {
            "no field has a `columnType`: nothing says which columns are measures and dimensions"
        };
        return Err(vec![problem(None, message)]);
    };

    let all_fields = fields_of(&resources[resource]);
    if all_fields.len() > MAX_FIELDS {
        return Err(vec![problem(
            None,
            format!(
                "the resource has {} fields; at most {MAX_FIELDS} are loaded",
                all_fields.len()
            ),
        )]);
    }
    let typed: Vec<Map<String, Value>> = all_fields
        .into_iter()
        .filter_map(|f| f.as_object().cloned())
        .filter(|f| f.contains_key("columnType"))
        .collect();
    let originals: Vec<String> = typed
        .iter()
        .map(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let columns = column_names(&originals);
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for original in &originals {
        *uses.entry(original.as_str()).or_insert(0) += 1;
    }
    let mut reported_twice: HashSet<&str> = HashSet::new();
    let mut problems = Vec::new();
    let mut fields = Vec::new();
    for ((field, original), column) in typed.iter().zip(&originals).zip(columns) {
        if original.is_empty() {
            problems.push(problem(None, "a field with a columnType has no name"));
            continue;
        }
        if uses.get(original.as_str()).is_some_and(|n| *n > 1) && reported_twice.insert(original.as_str()) {
            problems.push(problem(Some(original), "two fields have this name"));
        }
        let column_type = field["columnType"].as_str().unwrap_or_default();
        let Some(os_type) = vocabulary.get(column_type) else {
            problems.push(problem(
                Some(original),
                format!("unknown columnType {column_type:?}"),
            ));
            continue;
        };
        // The options the type takes, from the field's own keys; a `format` of `fmt:…` is the pattern.
        let allowed: Vec<String> = data_type_options(&os_type.data_type)
            .into_iter()
            .chain(column_type_options(column_type))
            .filter_map(|o| o["name"].as_str().map(str::to_owned))
            .collect();
        for key in OPTION_NAMES {
            if field.contains_key(key) && !allowed.iter().any(|a| a == key) {
                problems.push(problem(
                    Some(original),
                    format!("the option `{key}` does not apply to columnType {column_type:?}"),
                ));
            }
        }
        for option in column_type_options(column_type) {
            let (Some(name), Some(values)) = (option["name"].as_str(), option["values"].as_array()) else {
                continue;
            };
            let Some(given) = field.get(name).filter(|_| !values.is_empty()) else {
                continue;
            };
            let listed = |v: &str| {
                values.iter().any(|x| {
                    ["value", "name"]
                        .iter()
                        .any(|k| x[*k].as_str().is_some_and(|a| a.eq_ignore_ascii_case(v)))
                })
            };
            if !given.as_str().is_some_and(listed) {
                let choices: Vec<&str> = values.iter().filter_map(|x| x["value"].as_str()).collect();
                problems.push(problem(
                    Some(original),
                    format!("`{name}` is {given}; it must be one of {}", choices.join(", ")),
                ));
            }
        }
        let mut options = Map::new();
        for key in &allowed {
            if let Some(value) = field.get(key) {
                let value = match (key.as_str(), value) {
                    ("format", Value::String(f)) if f == "default" => continue,
                    ("format", Value::String(f)) => Value::String(f.trim_start_matches("fmt:").to_owned()),
                    (_, value) => value.clone(),
                };
                options.insert(key.clone(), value);
            }
        }
        let title = field
            .get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(original);
        fields.push(PlannedField {
            original: original.clone(),
            input: InputField {
                name: column,
                column_type: column_type.to_owned(),
                title: Some(title.to_owned()),
                options,
                ..InputField::default()
            },
        });
    }
    if !fields.iter().any(|f| f.input.column_type == "value") && problems.is_empty() {
        problems.push(problem(None, "no field is a measure (columnType `value`)"));
    }
    if problems.is_empty() {
        Ok(LoadPlan {
            name,
            title,
            resource,
            fields,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    #[test]
    fn a_resource_past_the_field_bound_is_refused_before_any_work() {
        let vocabulary = Vocabulary::embedded().unwrap();
        let mut fields = vec![serde_json::json!({"name": "amount", "columnType": "value"})];
        fields.extend((0..MAX_FIELDS).map(|_| serde_json::json!({"name": "x", "columnType": "value"})));
        let descriptor = serde_json::json!({"name": "wide", "resources": [{"schema": {"fields": fields}}]});
        let problems = plan(&vocabulary, &descriptor).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("at most 1000"),
            "{}",
            problems[0]
        );
    }

    fn fixture(name: &str) -> Value {
        // Copies of shared/fixtures/fiscal descriptors (tests/fixtures/README.md), so the test runs anywhere.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.datapackage.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_packager_example_plans_its_typed_fields() {
        let plan = plan(&Vocabulary::embedded().unwrap(), &fixture("os-packager-example")).unwrap();
        assert_eq!((plan.name.as_str(), plan.resource), ("example", 0));
        let names: Vec<_> = plan
            .fields
            .iter()
            .map(|f| (f.original.as_str(), f.input.name.as_str()))
            .collect();
        assert_eq!(names, [("date", "date"), ("money", "money")]);
        assert_eq!(
            plan.fields[0].input.options,
            json!({"format": "%Y-%m-%d"}).as_object().cloned().unwrap()
        );
        assert_eq!(plan.fields[1].input.options["decimalChar"], ".");
    }

    #[test]
    fn older_formats_untranslated_get_a_message_saying_so() {
        // `plan` reads the current form; `older::translate` runs before it on every load.
        let vocabulary = Vocabulary::embedded().unwrap();
        let problems = plan(&vocabulary, &fixture("boost-moldova")).unwrap_err();
        assert!(problems[0].message.contains("osType"), "{problems:?}");
        let problems = plan(&vocabulary, &fixture("fdp-labels-and-hierarchies")).unwrap_err();
        assert!(
            problems[0].message.contains("Fiscal Data Package 0.3"),
            "{problems:?}"
        );
    }

    #[test]
    fn problems_name_the_field() {
        let vocabulary = Vocabulary::embedded().unwrap();
        let descriptor = json!({"name": "x", "resources": [{"schema": {"fields": [
            {"name": "a", "columnType": "no:such"}, {"name": "b", "columnType": "unknown:string"}]}}]});
        let problems = plan(&vocabulary, &descriptor).unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "field \"a\": unknown columnType \"no:such\""
        );
        let no_measure = json!({"name": "x", "resources": [{"schema": {"fields": [{"name": "b", "columnType": "unknown:string"}]}}]});
        assert!(
            plan(&vocabulary, &no_measure).unwrap_err()[0]
                .message
                .contains("measure")
        );
        assert!(
            plan(&vocabulary, &json!({"resources": []})).unwrap_err()[0]
                .message
                .contains("no name")
        );
        let options = json!({"name": "x", "resources": [{"schema": {"fields": [
            {"name": "year", "columnType": "date:fiscal-year", "currency": "EUR"},
            {"name": "amount", "columnType": "value", "phase": "spent", "direction": "Expenditure",
             "description": "not an option", "resource": "r"}]}}]});
        let problems: Vec<String> = plan(&vocabulary, &options)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "field \"year\": the option `currency` does not apply to columnType \"date:fiscal-year\"",
                "field \"amount\": `phase` is \"spent\"; it must be one of proposed, approved, adjusted, executed",
            ]
        );
    }
}
