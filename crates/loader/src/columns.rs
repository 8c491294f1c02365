//! Column names from a resource's field names, as the original conductor's `prepare_field` made them (DESIGN
//! §7): ASCII-folded, lower-cased, every run of other characters one `_`, trimmed; a name that clashes with an
//! earlier one gets `_1`, `_2`, … (the original meant to, and never did).

use std::collections::{HashMap, HashSet};

/// The column name of each field name, in order.
pub fn column_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    // Linear in the number of names, however many share one: each base remembers the next suffix to try, so a
    // descriptor of thousands of same-named fields costs no more than one of distinct names.
    let mut taken: HashSet<String> = HashSet::with_capacity(names.len());
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let base = slug(name.as_ref());
        let mut candidate = base.clone();
        if taken.contains(&candidate) {
            let suffix = next_suffix.entry(base.clone()).or_insert(1);
            loop {
                candidate = format!("{base}_{suffix}");
                *suffix += 1;
                if !taken.contains(&candidate) {
                    break;
                }
            }
        }
        taken.insert(candidate.clone());
        columns.push(candidate);
    }
    columns
}

fn slug(name: &str) -> String {
    let folded = deunicode::deunicode(name.trim()).to_lowercase();
    let mut slug = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    let slug = slug.trim_matches('_');
    if slug.is_empty() {
        "column".to_owned()
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_lowercase_and_deduplicate() {
        assert_eq!(
            column_names(&[
                "admin2!",
                "admin2*",
                " Économie / Finances ",
                "Amount (EUR)",
                "admin2",
                "###"
            ]),
            [
                "admin2",
                "admin2_1",
                "economie_finances",
                "amount_eur",
                "admin2_2",
                "column"
            ]
        );
    }

    #[test]
    fn thousands_of_same_named_fields_get_distinct_names_in_order() {
        let mut names = vec!["a_1".to_owned()];
        names.extend(std::iter::repeat_n("a".to_owned(), 5000));
        let columns = column_names(&names);
        assert_eq!(columns[..4], ["a_1", "a", "a_2", "a_3"]);
        assert_eq!(columns[5000], "a_5000");
        let distinct: HashSet<&String> = columns.iter().collect();
        assert_eq!(distinct.len(), columns.len());
    }
}
