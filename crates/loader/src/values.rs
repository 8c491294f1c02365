//! Reading one CSV value as its Table Schema type says (DESIGN §7): numbers with the field's `decimalChar` and
//! `groupChar`, integers, dates in the field's format (`%Y-%m-%d`, `fmt:<strftime>`, or ISO by default), and the
//! empty string as a missing value. Errors quote the value, for messages naming row and column.

use chrono::NaiveDate;

/// A value ready for the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    Null,
    Text(String),
    /// A decimal number, normalised (`-1234.5`), kept as text so NUMERIC loses nothing.
    Number(String),
    Integer(i64),
    Date(NaiveDate),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a number")]
    Number(String),
    #[error("{0:?} is not an integer (or is beyond ±2147483647)")]
    Integer(String),
    #[error("{value:?} is not a date in the format {format:?}")]
    Date { value: String, format: String },
    #[error("the type {0:?} is not supported")]
    Type(String),
}

/// How a field's values read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueFormat {
    /// The Table Schema type: string, number, integer, date.
    pub data_type: String,
    pub decimal_char: String,
    pub group_char: String,
    /// `default`, `%Y-%m-%d` or `fmt:%d/%m/%Y`.
    pub format: String,
}

impl Default for ValueFormat {
    fn default() -> Self {
        Self {
            data_type: "string".into(),
            decimal_char: ".".into(),
            group_char: ",".into(),
            format: "default".into(),
        }
    }
}

/// Reads one raw CSV value.
pub fn read_value(raw: &str, format: &ValueFormat) -> Result<Cell, ValueError> {
    if raw.is_empty() {
        return Ok(Cell::Null);
    }
    match format.data_type.as_str() {
        "string" | "any" => Ok(Cell::Text(raw.to_owned())),
        "number" => read_number(raw, &format.decimal_char, &format.group_char).map(Cell::Number),
        "integer" => raw
            .trim()
            .parse::<i32>()
            // INTEGER columns are 32-bit (tableschema-sql's mapping); a larger value is named here, not by the
            // database.
            .map(|i| Cell::Integer(i64::from(i)))
            .map_err(|_| ValueError::Integer(quoted(raw))),
        "date" => read_date(raw, &format.format).map(Cell::Date),
        other => Err(ValueError::Type(other.to_owned())),
    }
}

fn read_number(raw: &str, decimal_char: &str, group_char: &str) -> Result<String, ValueError> {
    let error = || ValueError::Number(quoted(raw));
    let mut text = raw.trim().to_owned();
    if !group_char.is_empty() && group_char != decimal_char {
        text = text.replace(group_char, "");
    }
    if decimal_char != "." {
        text = text.replace(decimal_char, ".");
    }
    // Plain decimal notation (with an optional exponent); nothing a float parser would also take, like "inf".
    let valid = {
        let body = text.strip_prefix(['-', '+']).unwrap_or(&text);
        let (mantissa, exponent) = match body.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e)),
            None => (body, None),
        };
        let digits = mantissa.replace('.', "");
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && mantissa.matches('.').count() <= 1
            && exponent.is_none_or(|e| {
                let e = e.strip_prefix(['-', '+']).unwrap_or(e);
                !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
            })
    };
    if !valid {
        return Err(error());
    }
    Ok(text.trim_start_matches('+').to_owned())
}

fn read_date(raw: &str, format: &str) -> Result<NaiveDate, ValueError> {
    let pattern = match format {
        "default" | "any" | "" => "%Y-%m-%d",
        other => other.strip_prefix("fmt:").unwrap_or(other),
    };
    NaiveDate::parse_from_str(raw.trim(), pattern).map_err(|_| ValueError::Date {
        value: quoted(raw),
        format: pattern.to_owned(),
    })
}

/// The most of a bad cell an error quotes: enough to find it, no more (`/package/status` answers anyone).
const QUOTED_CELL_CHARS: usize = 40;

/// A cell as an error quotes it: cut at [`QUOTED_CELL_CHARS`] characters, marked with `…` when cut.
fn quoted(raw: &str) -> String {
    let mut chars = raw.chars();
    let mut shown: String = chars.by_ref().take(QUOTED_CELL_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quote_at_most_a_short_piece_of_the_cell() {
        let long = "9".repeat(30) + &"x".repeat(1000);
        let message = read_value(&long, &typed("integer")).unwrap_err().to_string();
        assert!(!message.contains(&"x".repeat(11)), "{message}");
        assert!(message.contains('…'), "{message}");
        assert_eq!(quoted("12x"), "12x");
    }

    fn typed(data_type: &str) -> ValueFormat {
        ValueFormat {
            data_type: data_type.into(),
            ..ValueFormat::default()
        }
    }

    #[test]
    fn numbers_read_with_their_separators() {
        assert_eq!(
            read_value("1,234.50", &typed("number")),
            Ok(Cell::Number("1234.50".into()))
        );
        let european = ValueFormat {
            decimal_char: ",".into(),
            group_char: ".".into(),
            ..typed("number")
        };
        assert_eq!(
            read_value("1.234,56", &european),
            Ok(Cell::Number("1234.56".into()))
        );
        assert_eq!(
            read_value("-3e5", &typed("number")),
            Ok(Cell::Number("-3e5".into()))
        );
        for bad in ["abc", "1.2.3", "inf", "NaN", "--1", "1e", "."] {
            assert_eq!(
                read_value(bad, &typed("number")),
                Err(ValueError::Number(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn integers_dates_and_missing_values() {
        assert_eq!(read_value("2014", &typed("integer")), Ok(Cell::Integer(2014)));
        assert!(read_value("2014.5", &typed("integer")).is_err());
        assert_eq!(read_value("", &typed("integer")), Ok(Cell::Null));
        let date = |y, m, d| Cell::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(read_value("2014-12-31", &typed("date")), Ok(date(2014, 12, 31)));
        let dd_mm = ValueFormat {
            format: "fmt:%d/%m/%Y".into(),
            ..typed("date")
        };
        assert_eq!(read_value("31/12/2014", &dd_mm), Ok(date(2014, 12, 31)));
        assert!(matches!(
            read_value("2014-12-31", &dd_mm),
            Err(ValueError::Date { .. })
        ));
        assert!(read_value("2014-02-30", &typed("date")).is_err(), "no such day");
        assert_eq!(read_value("x", &typed("string")), Ok(Cell::Text("x".into())));
    }
}
