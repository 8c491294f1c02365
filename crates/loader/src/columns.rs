//! Column names from a resource's field names, as the original conductor's `prepare_field` made them (DESIGN
//! §7): ASCII-folded, lower-cased, every run of other characters one `_`, trimmed; a name that clashes with an
//! earlier one gets `_1`, `_2`, … (the original meant to, and never did).

/// The column name of each field name, in order.
pub fn column_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut taken: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let base = slug(name.as_ref());
        let mut candidate = base.clone();
        let mut i = 1;
        while taken.contains(&candidate) {
            candidate = format!("{base}_{i}");
            i += 1;
        }
        taken.push(candidate);
    }
    taken
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
}
