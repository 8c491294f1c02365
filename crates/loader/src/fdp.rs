//! The Fiscal Data Package model, built exactly as os-types' `fieldsToModel` builds it (reference §2.3): the
//! same checks, slugs (with `_2`, `_3` de-duplication), dimensions named by concept type, `labelfor` and
//! `parent` found by type prefix with the parent-chain fallback, primary keys reordered parent-first, and
//! dataType options embedded with their defaults.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::vocabulary::{Vocabulary, column_type_options, data_type_options};

/// A field as os-types takes it: `name`, `type` (a columnType), and the optional rest.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputField {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub constant: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data: Option<Vec<Value>>,
}

/// What os-types reports: general errors and errors per field name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelErrors {
    pub general: Vec<String>,
    pub per_field: Vec<(String, String)>,
}

impl ModelErrors {
    fn field(&mut self, name: &str, message: String) {
        self.per_field.push((name.to_owned(), message));
    }

    pub fn is_empty(&self) -> bool {
        self.general.is_empty() && self.per_field.is_empty()
    }
}

impl std::fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .general
            .iter()
            .cloned()
            .chain(
                self.per_field
                    .iter()
                    .map(|(field, message)| format!("{field}: {message}")),
            )
            .collect();
        f.write_str(&lines.join("; "))
    }
}

/// The model and the schema, as os-types' `{model, schema}`.
#[derive(Clone, Debug, PartialEq)]
pub struct FdpModel {
    pub model: Value,
    pub schema: Value,
}

/// lodash's `deburr`, which os-types slugs with: Latin-1 Supplement and Latin Extended-A letters become basic
/// Latin, combining marks are dropped, and every other character stays as it is.
fn deburr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{0300}'..='\u{036f}' | '\u{fe20}'..='\u{fe2f}' | '\u{20d0}'..='\u{20ff}' => {}
            'Æ' => out.push_str("Ae"),
            'æ' => out.push_str("ae"),
            'Œ' => out.push_str("Oe"),
            'œ' => out.push_str("oe"),
            'Þ' => out.push_str("Th"),
            'þ' => out.push_str("th"),
            'ß' => out.push_str("ss"),
            '×' | '÷' => out.push(c),
            '\u{00c0}'..='\u{00ff}' | '\u{0100}'..='\u{017f}' => {
                out.push_str(deunicode::deunicode_char(c).unwrap_or(""))
            }
            _ => out.push(c),
        }
    }
    out
}

fn slug_of(name: &str, column_type: &str, taken: &mut Vec<String>) -> String {
    let words = |text: &str| -> Vec<String> {
        deburr(text)
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut parts = words(name);
    if parts.is_empty() {
        parts = words(column_type);
    }
    let base = parts.join("_");
    let mut slug = base.clone();
    let mut i = 2;
    while taken.contains(&slug) {
        slug = format!("{base}_{i}");
        i += 1;
    }
    taken.push(slug.clone());
    slug
}

fn embed_options(target: &mut Map<String, Value>, given: &Map<String, Value>, available: &[Value]) {
    for option in available {
        let Some(name) = option["name"].as_str() else {
            continue;
        };
        let value = given
            .get(name)
            .filter(|v| truthy(v))
            .cloned()
            .or_else(|| option.get("defaultValue").cloned());
        if let Some(value) = value {
            target.insert(name.to_owned(), transform(name, value));
        }
    }
}

/// os-types 1.15's option transforms: a date, time or datetime `format` becomes a Table Schema `fmt:` pattern
/// (the form the original pipeline then parsed dates with).
fn transform(name: &str, value: Value) -> Value {
    match (name, value) {
        ("format", Value::String(pattern)) => Value::String(format!("fmt:{pattern}")),
        (_, value) => value,
    }
}

/// JavaScript truthiness, which os-types applies to option values.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0 && !x.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Builds the model of `fields`, or the errors os-types would report.
pub fn fields_to_model(vocabulary: &Vocabulary, fields: &[InputField]) -> Result<FdpModel, ModelErrors> {
    let mut errors = ModelErrors::default();
    check(vocabulary, fields, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut dimensions = Map::new();
    let mut measures = Map::new();
    let mut schema_fields: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut schema_primary_key: Vec<Value> = Vec::new();
    let mut taken = Vec::new();
    for field in fields {
        let Some(os_type) = vocabulary.get(&field.column_type) else {
            continue;
        };
        let title = field
            .title
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| field.name.clone());
        let slug = slug_of(&field.name, &field.column_type, &mut taken);
        let concept = field.column_type.split(':').next().unwrap_or_default().to_owned();
        let data_options = data_type_options(&os_type.data_type);
        let mut options = data_options.clone();
        options.extend(column_type_options(&field.column_type));
        let mut schema_field = Map::new();
        schema_field.insert("title".into(), json!(title));
        schema_field.insert("name".into(), json!(field.name));
        schema_field.insert("slug".into(), json!(slug));
        schema_field.insert("type".into(), json!(os_type.data_type));
        let format = os_type
            .format
            .clone()
            .or_else(|| field.format.clone())
            .unwrap_or_else(|| "default".into());
        schema_field.insert("format".into(), json!(format));
        schema_field.insert("columnType".into(), json!(field.column_type));
        schema_field.insert("conceptType".into(), json!(concept));
        if let Some(resource) = &field.resource {
            schema_field.insert("resource".into(), json!(resource));
        }
        schema_field.insert("options".into(), Value::Array(options));
        embed_options(&mut schema_field, &field.options, &data_options);
        schema_fields.push((field.name.clone(), schema_field));

        if concept == "value" {
            let mut measure = Map::new();
            measure.insert("source".into(), json!(field.name));
            measure.insert("title".into(), json!(title));
            if let Some(resource) = &field.resource {
                measure.insert("resource".into(), json!(resource));
            }
            embed_options(&mut measure, &field.options, &column_type_options("value"));
            measures.insert(slug, Value::Object(measure));
        } else {
            let dimension = dimensions.entry(concept.clone()).or_insert_with(|| {
                let mut dimension = Map::new();
                dimension.insert("dimensionType".into(), json!(os_type.dimension_type));
                dimension.insert("primaryKey".into(), json!([]));
                dimension.insert("attributes".into(), json!({}));
                if let Some(classification) = &os_type.classification_type {
                    dimension.insert("classificationType".into(), json!(classification));
                }
                Value::Object(dimension)
            });
            let mut attribute = Map::new();
            attribute.insert("source".into(), json!(field.name));
            attribute.insert("title".into(), json!(title));
            if let Some(resource) = &field.resource {
                attribute.insert("resource".into(), json!(resource));
            }
            if let Some(constant) = field.constant.as_ref().filter(|c| truthy(c)) {
                attribute.insert("constant".into(), constant.clone());
            }
            dimension["attributes"][&slug] = Value::Object(attribute);
            if os_type.unique_identifier {
                if let Some(primary_key) = dimension["primaryKey"].as_array_mut() {
                    primary_key.push(json!(slug));
                }
                schema_primary_key.push(json!(field.name));
            }
        }
    }

    // labelfor and parent: the first schema field (in input order) whose columnType starts with the type.
    let find = |prefix: &str| -> Option<(String, String)> {
        schema_fields
            .iter()
            .find(|(_, f)| f["columnType"].as_str().is_some_and(|t| t.starts_with(prefix)))
            .map(|(_, f)| {
                (
                    f["slug"].as_str().unwrap_or_default().to_owned(),
                    f["conceptType"].as_str().unwrap_or_default().to_owned(),
                )
            })
    };
    let mut links: Vec<(String, String, &'static str, String)> = Vec::new(); // (concept, slug, key, target slug)
    for (name, field) in &schema_fields {
        let column_type = field["columnType"].as_str().unwrap_or_default();
        let Some(os_type) = vocabulary.get(column_type) else {
            continue;
        };
        let slug = field["slug"].as_str().unwrap_or_default().to_owned();
        let concept = field["conceptType"].as_str().unwrap_or_default().to_owned();
        if let Some(labelfor) = &os_type.labelfor {
            match find(labelfor) {
                Some((target, _)) => links.push((concept.clone(), slug.clone(), "labelfor", target)),
                None => errors.field(
                    name,
                    format!("Couldn't find a column mapped to the matching 'code' ({labelfor})"),
                ),
            }
        }
        let mut parent = os_type.parent.clone();
        while let Some(current) = parent {
            let target = find(&current);
            parent = vocabulary
                .first_with_prefix(&current)
                .and_then(|t| t.parent.clone());
            if let Some((target, _)) = target {
                links.push((concept.clone(), slug.clone(), "parent", target));
                break;
            } else if parent.is_none() {
                let declared = os_type.parent.clone().unwrap_or_default();
                errors.field(
                    name,
                    format!("Couldn't find a column mapped to the parent of this type ({declared})"),
                );
            }
        }
    }
    for (concept, slug, key, target) in links {
        dimensions[&concept]["attributes"][&slug][key] = json!(target);
    }

    for dimension in dimensions.values_mut() {
        let attributes: Vec<String> = dimension["attributes"]
            .as_object()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        let Some(primary_key) = dimension["primaryKey"].as_array().cloned() else {
            continue;
        };
        let mut primary_key: Vec<String> = primary_key
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if primary_key.is_empty() {
            // os-types takes `_.keys(attributes)`, in insertion order.
            primary_key = insertion_ordered(&schema_fields, &attributes);
        }
        // Parents before children: swap a key with its parent found later, until nothing moves.
        loop {
            let mut swaps = 0;
            for i in 0..primary_key.len() {
                let parent = dimension["attributes"][&primary_key[i]]["parent"]
                    .as_str()
                    .map(str::to_owned);
                let Some(parent) = parent else { continue };
                if let Some(j) = (i + 1..primary_key.len()).find(|&j| primary_key[j] == parent) {
                    primary_key.swap(i, j);
                    swaps += 1;
                }
            }
            if swaps == 0 {
                break;
            }
        }
        dimension["primaryKey"] = json!(primary_key);
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let fields: Map<String, Value> = schema_fields
        .into_iter()
        .map(|(n, f)| (n, Value::Object(f)))
        .collect();
    Ok(FdpModel {
        model: json!({"dimensions": dimensions, "measures": measures}),
        schema: json!({"fields": fields, "primaryKey": schema_primary_key}),
    })
}

/// A dimension's attribute slugs in the order their fields came (serde_json's map is sorted; os-types' is not).
fn insertion_ordered(schema_fields: &[(String, Map<String, Value>)], attributes: &[String]) -> Vec<String> {
    schema_fields
        .iter()
        .filter_map(|(_, f)| f["slug"].as_str())
        .filter(|slug| attributes.iter().any(|a| a == slug))
        .map(str::to_owned)
        .collect()
}

/// os-types' `_checkInput`.
fn check(vocabulary: &Vocabulary, fields: &[InputField], errors: &mut ModelErrors) {
    let mut names: Vec<&str> = Vec::new();
    for field in fields {
        if names.contains(&field.name.as_str()) {
            errors.field(&field.name, format!("Got duplicate name {}", field.name));
        }
        names.push(&field.name);
    }
    let mut titles: Vec<&str> = Vec::new();
    for field in fields {
        if let Some(title) = field.title.as_deref().filter(|t| !t.is_empty()) {
            if titles.contains(&title) {
                errors.field(title, format!("Got duplicate title {title}"));
            }
            titles.push(title);
        }
    }
    for field in fields {
        let Some(os_type) = vocabulary.get(&field.column_type) else {
            errors.field(&field.name, format!("Got unknown type {}", field.column_type));
            continue;
        };
        let allowed: Vec<Value> = data_type_options(&os_type.data_type)
            .into_iter()
            .chain(column_type_options(&field.column_type))
            .collect();
        let unknown: Vec<&String> = field
            .options
            .keys()
            .filter(|k| !allowed.iter().any(|o| o["name"].as_str() == Some(k.as_str())))
            .collect();
        if !unknown.is_empty() {
            let unknown: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
            errors.field(
                &field.name,
                format!("Got unknown options key {}", unknown.join(",")),
            );
        }
    }
}

/// Reference §2.4's worked example: five fields of an administrative classification, a fiscal year and an amount.
#[cfg(test)]
pub(crate) fn worked_example() -> Vec<InputField> {
    let field = |name: &str, column_type: &str| InputField {
        name: name.into(),
        column_type: column_type.into(),
        ..InputField::default()
    };
    let mut amount = field("amount", "value");
    amount.options.insert("currency".into(), json!("EUR"));
    vec![
        field("year", "date:fiscal-year"),
        field("admin1_code", "administrative-classification:generic:level1:code"),
        field(
            "admin1_label",
            "administrative-classification:generic:level1:label",
        ),
        field("admin2_code", "administrative-classification:generic:level2:code"),
        amount,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, column_type: &str) -> InputField {
        InputField {
            name: name.into(),
            column_type: column_type.into(),
            ..InputField::default()
        }
    }

    fn vocabulary() -> Vocabulary {
        Vocabulary::embedded().unwrap()
    }

    /// Reference §2.4's worked example.
    #[test]
    fn the_worked_example_gives_the_documented_model() {
        let model = fields_to_model(&vocabulary(), &worked_example()).unwrap().model;
        assert_eq!(
            model,
            json!({"dimensions": {"date": {"dimensionType": "datetime", "primaryKey": ["year"], "attributes": {"year": {"source": "year", "title": "year"}}},
              "administrative-classification": {"dimensionType": "classification", "classificationType": "administrative",
                "primaryKey": ["admin1_code", "admin2_code"],
                "attributes": {"admin1_code": {"source": "admin1_code", "title": "admin1_code"},
                               "admin1_label": {"source": "admin1_label", "title": "admin1_label", "labelfor": "admin1_code"},
                               "admin2_code": {"source": "admin2_code", "title": "admin2_code", "parent": "admin1_code"}}}},
             "measures": {"amount": {"source": "amount", "title": "amount", "currency": "EUR"}}})
        );
    }

    #[test]
    fn slugs_deburr_fall_back_to_the_type_and_deduplicate() {
        let fields = [
            field("héllô₪wörld", "unknown:string"),
            field("hello-world", "unknown:number"),
            field("שלום עולם", "activity:generic:program:code"),
        ];
        let out = fields_to_model(&vocabulary(), &fields).unwrap();
        let slug = |name: &str| out.schema["fields"][name]["slug"].as_str().unwrap().to_owned();
        assert_eq!(slug("héllô₪wörld"), "hello_world");
        assert_eq!(slug("hello-world"), "hello_world_2");
        assert_eq!(slug("שלום עולם"), "activity_generic_program_code");
    }

    #[test]
    fn parents_fall_back_up_the_chain_and_keys_come_parent_first() {
        let fields = [
            field("l3", "administrative-classification:generic:level3:code"),
            field("l7", "administrative-classification:generic:level7:code"),
            field("l2", "administrative-classification:generic:level2:code"),
            field("l1", "administrative-classification:generic:level1:code"),
            field("l6", "administrative-classification:generic:level6:code"),
            field("l5", "administrative-classification:generic:level5:code"),
        ];
        let out = fields_to_model(&vocabulary(), &fields).unwrap();
        let dimension = &out.model["dimensions"]["administrative-classification"];
        assert_eq!(
            dimension["primaryKey"],
            json!(["l1", "l2", "l3", "l5", "l6", "l7"])
        );
        assert_eq!(
            dimension["attributes"]["l5"]["parent"], "l3",
            "level4 is missing: level3 is the parent"
        );
    }

    #[test]
    fn bad_input_is_reported_per_field() {
        let mut bad_option = field("amount", "value");
        bad_option.options.insert("colour".into(), json!("red"));
        let errors = fields_to_model(&vocabulary(), &[field("x", "no:such:type"), bad_option]).unwrap_err();
        assert!(
            errors.to_string().contains("x: Got unknown type no:such:type"),
            "{errors}"
        );
        assert!(
            errors
                .to_string()
                .contains("amount: Got unknown options key colour"),
            "{errors}"
        );
        let errors = fields_to_model(&vocabulary(), &[field("a", "value"), field("a", "value")]).unwrap_err();
        assert!(errors.to_string().contains("Got duplicate name a"), "{errors}");
        let label_only = [field(
            "label",
            "administrative-classification:generic:level1:label",
        )];
        let errors = fields_to_model(&vocabulary(), &label_only).unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("Couldn't find a column mapped to the matching 'code'"),
            "{errors}"
        );
    }
}
