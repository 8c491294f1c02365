//! The registry record a finished load saves (reference §1.1), and the author's address hidden as the original did.

use conductor_core::{Clock, LoadStatus, PackageId, PackageRecord};
use serde_json::{Value, json};
use url::Url;

/// The registry record of a finished load (reference §1.1, DESIGN §7): the user's descriptor with `owner`,
/// `private` (a first load is private, a reload keeps the visibility), the FDP model and row counts; the
/// author's e-mail hidden; `defaultParams` kept across reloads.
#[allow(clippy::too_many_arguments)]
pub(super) fn registry_record(
    id: &PackageId,
    origin_url: &Url,
    mut descriptor: Value,
    fdp_model: &Value,
    babbage: Value,
    rows: u64,
    previous: Option<&PackageRecord>,
    clock: &dyn Clock,
) -> PackageRecord {
    let private = previous
        .and_then(|p| p.package.get("private"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if let Some(package) = descriptor.as_object_mut() {
        package.insert("owner".into(), json!(id.owner().as_str()));
        package.insert("private".into(), json!(private));
        package.insert("model".into(), fdp_model.clone());
        package.insert("count_of_rows".into(), json!(rows));
        if let Some(author) = package.get("author").and_then(Value::as_str) {
            let hidden = hide_email(author);
            package.insert("author".into(), json!(hidden));
        }
        if let Some(params) = previous.and_then(|p| p.package.get("defaultParams")) {
            package.insert("defaultParams".into(), params.clone());
        }
    }
    PackageRecord {
        id: id.clone(),
        model: babbage,
        package: descriptor,
        origin_url: origin_url.to_string(),
        dataset: None,
        author: None,
        loading_status: Some(LoadStatus::Done),
        loaded: true,
        last_update: clock.now(),
    }
}

/// The original's rule (`parseaddr`): `Name <someone@example.org>` becomes `Name <someone@not.shown>`; an author
/// without an address stays as it is.
pub fn hide_email(author: &str) -> String {
    let trimmed = author.trim();
    let (name, address) = match (trimmed.rfind('<'), trimmed.ends_with('>')) {
        (Some(open), true) => (trimmed[..open].trim(), &trimmed[open + 1..trimmed.len() - 1]),
        _ if trimmed.contains('@') && !trimmed.contains(' ') => ("", trimmed),
        _ => return author.to_owned(),
    };
    let Some((local, _)) = address.trim().rsplit_once('@') else {
        return author.to_owned();
    };
    let name = name.trim_matches('"');
    if name.is_empty() {
        format!("<{local}@not.shown>")
    } else {
        format!("{name} <{local}@not.shown>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_lose_their_address_domain() {
        assert_eq!(
            hide_email("Jane Doe <jane@example.org>"),
            "Jane Doe <jane@not.shown>"
        );
        assert_eq!(
            hide_email("\"Doe, Jane\" <jane@example.org>"),
            "Doe, Jane <jane@not.shown>"
        );
        assert_eq!(hide_email("jane@example.org"), "<jane@not.shown>");
        assert_eq!(hide_email("Ministry of Finance"), "Ministry of Finance");
    }
}
