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

impl Cell {
    /// `*self = source.clone()`, keeping this cell's text buffer when both hold text.
    pub fn assign_from(&mut self, source: &Cell) {
        match (self, source) {
            (Cell::Text(to), Cell::Text(from)) | (Cell::Number(to), Cell::Number(from)) => {
                to.clear();
                to.push_str(from);
            }
            (slot, source) => *slot = source.clone(),
        }
    }
}

/// Reads one raw CSV value.
pub fn read_value(raw: &str, format: &ValueFormat) -> Result<Cell, ValueError> {
    let mut cell = Cell::Null;
    read_value_into(raw, format, &mut cell)?;
    Ok(cell)
}

/// Reads one raw CSV value into `cell`, reusing the text buffer the cell already holds: a load reads every row
/// into the same cells, so text and numbers cost no allocation per value once the buffers have grown.
pub fn read_value_into(raw: &str, format: &ValueFormat, cell: &mut Cell) -> Result<(), ValueError> {
    if raw.is_empty() {
        *cell = Cell::Null;
        return Ok(());
    }
    match format.data_type.as_str() {
        "string" | "any" => {
            let mut text = take_buffer(cell);
            text.push_str(raw);
            *cell = Cell::Text(text);
        }
        "number" => {
            let mut text = take_buffer(cell);
            read_number_into(raw, &format.decimal_char, &format.group_char, &mut text)?;
            *cell = Cell::Number(text);
        }
        _ => *cell = read_other(raw, format)?,
    }
    Ok(())
}

/// The cell's text buffer, emptied (or a new one), leaving `Null` behind.
fn take_buffer(cell: &mut Cell) -> String {
    match std::mem::replace(cell, Cell::Null) {
        Cell::Text(mut text) | Cell::Number(mut text) => {
            text.clear();
            text
        }
        _ => String::new(),
    }
}

fn read_other(raw: &str, format: &ValueFormat) -> Result<Cell, ValueError> {
    match format.data_type.as_str() {
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

/// A number in plain decimal notation written into `out` (emptied first): the group separators dropped, the
/// decimal separator made `.`, a leading `+` dropped.
fn read_number_into(
    raw: &str,
    decimal_char: &str,
    group_char: &str,
    out: &mut String,
) -> Result<(), ValueError> {
    let error = || ValueError::Number(quoted(raw));
    let trimmed = raw.trim();
    let drop_groups = !group_char.is_empty() && group_char != decimal_char && trimmed.contains(group_char);
    // An empty separator is no separator: `contains("")` always holds, and the loop below would never advance.
    let swap_decimal = !decimal_char.is_empty() && decimal_char != "." && trimmed.contains(decimal_char);
    out.clear();
    if drop_groups || swap_decimal {
        let mut rest = trimmed;
        while !rest.is_empty() {
            if drop_groups && rest.starts_with(group_char) {
                rest = &rest[group_char.len()..];
            } else if swap_decimal && rest.starts_with(decimal_char) {
                out.push('.');
                rest = &rest[decimal_char.len()..];
            } else {
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    } else {
        out.push_str(trimmed);
    }
    // Plain decimal notation (with an optional exponent); nothing a float parser would also take, like "inf".
    if !plain_decimal(out.as_bytes()) {
        return Err(error());
    }
    if out.starts_with('+') {
        out.remove(0);
    }
    Ok(())
}

/// `[+-]digits[.digits][(e|E)[+-]digits]` with at least one digit before the exponent, checked in one pass.
fn plain_decimal(text: &[u8]) -> bool {
    let mut rest = match text.first() {
        Some(b'+' | b'-') => &text[1..],
        _ => text,
    };
    let (mut digits, mut dots) = (0, 0);
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            b'e' | b'E' => {
                let exponent = match tail.first() {
                    Some(b'+' | b'-') => &tail[1..],
                    _ => tail,
                };
                return digits > 0
                    && dots <= 1
                    && !exponent.is_empty()
                    && exponent.iter().all(u8::is_ascii_digit);
            }
            _ => return false,
        }
        rest = tail;
    }
    digits > 0 && dots <= 1
}

/// What a date of format `any` may look like, tried in order: ISO first, then day before month (as FDP's own
/// examples and most budgets outside the United States write dates).
const ANY_DATE: [&str; 5] = ["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y"];

fn read_date(raw: &str, format: &str) -> Result<NaiveDate, ValueError> {
    let pattern = match format.strip_prefix("fmt:").unwrap_or(format) {
        "default" | "" => "%Y-%m-%d",
        "any" => {
            return ANY_DATE
                .iter()
                .find_map(|pattern| NaiveDate::parse_from_str(raw.trim(), pattern).ok())
                .ok_or_else(|| ValueError::Date {
                    value: quoted(raw),
                    format: "any".into(),
                });
        }
        other => other,
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
        for (good, read) in [
            ("+2", "2"),
            (" 1.5E-3 ", "1.5E-3"),
            ("7.", "7."),
            (".5", ".5"),
            ("1e+9", "1e+9"),
        ] {
            assert_eq!(
                read_value(good, &typed("number")),
                Ok(Cell::Number(read.into())),
                "{good}"
            );
        }
        // One cell read over another keeps no trace of it.
        let mut cell = Cell::Number("123456789.123".into());
        read_value_into("4", &typed("number"), &mut cell).unwrap();
        assert_eq!(cell, Cell::Number("4".into()));
        for bad in [
            "abc", "1.2.3", "inf", "NaN", "--1", "1e", ".", "e5", "1e5.0", "1e-", "+", "1 2", "1.e5.", "1ee5",
        ] {
            assert_eq!(
                read_value(bad, &typed("number")),
                Err(ValueError::Number(bad.into())),
                "{bad}"
            );
        }
    }

    /// Found by `scripts/fuzz` (target `values`): an empty `decimalChar` made the copy loop spin forever,
    /// growing its buffer until memory ran out.
    #[test]
    fn an_empty_separator_is_no_separator() {
        let format = ValueFormat {
            decimal_char: String::new(),
            group_char: ",".into(),
            ..typed("number")
        };
        assert_eq!(read_value("1,234.5", &format), Ok(Cell::Number("1234.5".into())));
        assert_eq!(
            read_value("\0\0\0", &format),
            Err(ValueError::Number("\0\0\0".into()))
        );
    }

    #[test]
    fn a_date_of_format_any_reads_iso_first_then_day_before_month() {
        let date = |y, m, d| Cell::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let any = ValueFormat {
            format: "fmt:any".into(),
            ..typed("date")
        };
        assert_eq!(read_value("2015-02-01", &any), Ok(date(2015, 2, 1)));
        assert_eq!(read_value("01/02/2015", &any), Ok(date(2015, 2, 1)));
        assert_eq!(read_value("01.02.2015", &any), Ok(date(2015, 2, 1)));
        let message = read_value("02/31/2015", &any).unwrap_err().to_string();
        assert!(message.contains("\"any\""), "{message}");
    }

    #[test]
    fn integers_dates_and_missing_values() {
        assert_eq!(read_value("2014", &typed("integer")), Ok(Cell::Integer(2014)));
        // INTEGER columns are 32-bit: the bounds pass, one past them is named.
        assert_eq!(
            read_value("2147483647", &typed("integer")),
            Ok(Cell::Integer(2_147_483_647))
        );
        assert_eq!(
            read_value("-2147483648", &typed("integer")),
            Ok(Cell::Integer(-2_147_483_648))
        );
        for beyond in ["2147483648", "-2147483649"] {
            let message = read_value(beyond, &typed("integer")).unwrap_err().to_string();
            assert!(message.contains("beyond ±2147483647"), "{message}");
        }
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
