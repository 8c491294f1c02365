//! Reading a resource's CSV as a stream of typed rows: its encoding and dialect from the descriptor, the header
//! checked against the schema, each value read as its field says, and errors naming row, column and value.

use std::io::Read;

use serde_json::Value;

use crate::values::{Cell, ValueFormat, read_value_into};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("the encoding {0:?} is not one this loader knows")]
    Encoding(String),
    #[error("the dialect's {key} must be a single ASCII character, not {value:?}")]
    Dialect { key: &'static str, value: String },
    #[error("the CSV has no header row")]
    NoHeader,
    #[error("the CSV header has no column {0:?} (the schema's field); it has {1}")]
    MissingColumns(String, String),
    #[error("row {row}, column {column:?}: {message}")]
    Value {
        row: u64,
        column: String,
        message: String,
    },
    #[error("row {row}: {message}")]
    Malformed { row: u64, message: String },
}

/// How one resource's bytes read as CSV, from its descriptor (`encoding`, `dialect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvFormat {
    pub encoding: &'static encoding_rs::Encoding,
    pub delimiter: u8,
    pub quote: u8,
    pub double_quote: bool,
    pub escape: Option<u8>,
    pub skip_initial_space: bool,
    pub header: bool,
}

impl CsvFormat {
    /// Reads `resource.encoding` and `resource.dialect` (CSV Dialect), with the Table Schema defaults.
    pub fn of_resource(resource: &Value) -> Result<Self, TableError> {
        let label = resource
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("utf-8");
        let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes())
            .ok_or_else(|| TableError::Encoding(label.to_owned()))?;
        let dialect = resource.get("dialect").cloned().unwrap_or(Value::Null);
        let char_of = |key: &'static str, default: u8| -> Result<u8, TableError> {
            match dialect.get(key).and_then(Value::as_str) {
                None => Ok(default),
                Some(s) if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
                Some(s) => Err(TableError::Dialect {
                    key,
                    value: s.to_owned(),
                }),
            }
        };
        let escape = match dialect.get("escapeChar").and_then(Value::as_str) {
            None => None,
            Some(_) => Some(char_of("escapeChar", b'\\')?),
        };
        let flag = |key: &str, default: bool| dialect.get(key).and_then(Value::as_bool).unwrap_or(default);
        Ok(Self {
            encoding,
            delimiter: char_of("delimiter", b',')?,
            quote: char_of("quoteChar", b'"')?,
            double_quote: flag("doubleQuote", true),
            escape,
            skip_initial_space: flag("skipInitialSpace", false),
            header: flag("header", true),
        })
    }
}

/// The largest one CSV row may be: an unclosed quote would otherwise make the reader hold the rest of the file.
pub const MAX_ROW_BYTES: u64 = 16 * 1024 * 1024;

/// Fails the stream when more than [`MAX_ROW_BYTES`] pass without a row ending (the reader resets the count).
struct RowGuard<R> {
    inner: R,
    since_row: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for RowGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        let n = self.inner.read(buf)?;
        if self.since_row.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > MAX_ROW_BYTES {
            return Err(std::io::Error::other(format!(
                "a row is longer than {} MiB (is a quote left open?)",
                MAX_ROW_BYTES / (1024 * 1024)
            )));
        }
        Ok(n)
    }
}

/// One schema field to read from the CSV.
#[derive(Clone, Debug)]
pub struct ColumnSpec {
    /// The field's name as the CSV header spells it.
    pub header: String,
    pub format: ValueFormat,
}

/// Typed rows out of a CSV stream, the columns in the order of the specs given.
pub struct TableReader {
    reader: csv::Reader<RowGuard<Box<dyn Read + Send>>>,
    /// The current row, read into the same buffers every time: a fresh record per row was an allocation or
    /// more per row.
    record: csv::ByteRecord,
    since_row: std::sync::Arc<std::sync::atomic::AtomicU64>,
    positions: Vec<usize>,
    specs: Vec<ColumnSpec>,
    row: u64,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

impl TableReader {
    /// Reads the header (when the dialect has one) and finds each spec's column; columns the schema does not
    /// name are skipped. Without a header the schema's fields are the columns in order.
    pub fn open(
        input: Box<dyn Read + Send>,
        format: &CsvFormat,
        specs: Vec<ColumnSpec>,
        schema_order: &[String],
    ) -> Result<Self, TableError> {
        let decoded: Box<dyn Read + Send> = if format.encoding == encoding_rs::UTF_8 {
            // UTF-8 is read as it is, so bytes that are not UTF-8 stay invalid and fail the row that holds them
            // (a decoder would turn them into U+FFFD and load them); only a byte order mark is dropped.
            let mut buffered = std::io::BufReader::with_capacity(64 * 1024, input);
            let bom = std::io::BufRead::fill_buf(&mut buffered).is_ok_and(|b| b.starts_with(b"\xef\xbb\xbf"));
            if bom {
                std::io::BufRead::consume(&mut buffered, 3);
            }
            Box::new(buffered)
        } else {
            Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(format.encoding))
                    .bom_override(true)
                    .build(input),
            )
        };
        let since_row = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let decoded = RowGuard {
            inner: decoded,
            since_row: since_row.clone(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(format.delimiter)
            .quote(format.quote)
            .double_quote(format.double_quote)
            .escape(format.escape)
            .flexible(true)
            .trim(if format.skip_initial_space {
                csv::Trim::Fields
            } else {
                csv::Trim::None
            })
            .from_reader(decoded);
        let header: Vec<String> = if format.header {
            let mut record = csv::ByteRecord::new();
            let read = reader
                .read_byte_record(&mut record)
                .map_err(|e| TableError::Malformed {
                    row: 0,
                    message: e.to_string(),
                })?;
            if !read {
                return Err(TableError::NoHeader);
            }
            record
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_owned())
                .collect()
        } else {
            schema_order.to_vec()
        };
        let mut positions = Vec::with_capacity(specs.len());
        let mut missing = Vec::new();
        for spec in &specs {
            match header.iter().position(|h| *h == spec.header) {
                Some(i) => positions.push(i),
                None => missing.push(spec.header.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(TableError::MissingColumns(
                missing.join("\", \""),
                if header.is_empty() {
                    "no columns".into()
                } else {
                    format!("{:?}", header)
                },
            ));
        }
        Ok(Self {
            reader,
            record: csv::ByteRecord::new(),
            since_row,
            positions,
            specs,
            row: 0,
        })
    }

    /// The data rows read so far (the header not counted).
    pub fn rows_read(&self) -> u64 {
        self.row
    }

    /// Moves to the next row without typing its values (see [`Self::raw`], [`Self::read_cell`] and
    /// [`Self::read_cells`]), or returns `false` at the end. Rows are numbered from 1, the first data row.
    pub fn next_record(&mut self) -> Result<bool, TableError> {
        loop {
            let row = self.row + 1;
            let read = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| TableError::Malformed {
                    row,
                    message: e.to_string(),
                })?;
            if !read {
                return Ok(false);
            }
            // A blank line is skipped, as the original's tabulator did, and not counted.
            if !(self.record.len() == 1 && self.record.get(0).is_some_and(<[u8]>::is_empty)) {
                break;
            }
        }
        self.row += 1;
        // The reader buffers ahead, so this counts from somewhere in the last buffer: a row of up to the limit
        // less one buffer always passes.
        self.since_row.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// How many columns a row has: the specs it was opened with.
    pub fn width(&self) -> usize {
        self.specs.len()
    }

    /// Column `column`'s bytes in the current row, as the file holds them (empty where the row is short).
    pub fn raw(&self, column: usize) -> &[u8] {
        self.positions
            .get(column)
            .and_then(|&position| self.record.get(position))
            .unwrap_or_default()
    }

    /// Every column of the current row typed into `cells` (their text buffers reused); the first column in
    /// order that fails is the error.
    pub fn read_cells(&self, cells: &mut Vec<Cell>) -> Result<(), TableError> {
        cells.resize(self.specs.len(), Cell::Null);
        cells
            .iter_mut()
            .enumerate()
            .try_for_each(|(column, cell)| self.read_cell(column, cell))
    }

    /// Column `column` of the current row typed into `cell`, reusing its text buffer.
    pub fn read_cell(&self, column: usize, cell: &mut Cell) -> Result<(), TableError> {
        let Some(spec) = self.specs.get(column) else {
            *cell = Cell::Null;
            return Ok(());
        };
        let failed = |message: String| TableError::Value {
            row: self.row,
            column: spec.header.clone(),
            message,
        };
        let text = std::str::from_utf8(self.raw(column))
            .map_err(|_| failed("the value is not valid text in the resource's encoding".into()))?;
        if text.contains('\0') {
            return Err(failed("the value holds a NUL character".into()));
        }
        read_value_into(text, &spec.format, cell).map_err(|e| failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(header: &str, data_type: &str) -> ColumnSpec {
        ColumnSpec {
            header: header.into(),
            format: ValueFormat {
                data_type: data_type.into(),
                ..ValueFormat::default()
            },
        }
    }

    fn reader(csv: &[u8], resource: Value, specs: Vec<ColumnSpec>) -> Result<TableReader, TableError> {
        let format = CsvFormat::of_resource(&resource)?;
        TableReader::open(Box::new(std::io::Cursor::new(csv.to_vec())), &format, specs, &[])
    }

    fn all(mut reader: TableReader) -> Result<Vec<Vec<Cell>>, TableError> {
        let mut rows = Vec::new();
        let mut cells = Vec::new();
        while reader.next_record()? {
            reader.read_cells(&mut cells)?;
            rows.push(cells.clone());
        }
        Ok(rows)
    }

    #[test]
    fn columns_are_found_by_header_and_extra_ones_skipped() {
        let csv = b"id,amount,name,year\n1,10.5,a,2014\n\n2,,b,2015\n";
        let rows = all(reader(
            csv,
            json!({}),
            vec![spec("year", "integer"), spec("amount", "number")],
        )
        .unwrap())
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Cell::Integer(2014), Cell::Number("10.5".into())],
                vec![Cell::Integer(2015), Cell::Null]
            ]
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let err = reader(
            b"a,b\n1,2\n",
            json!({}),
            vec![spec("a", "string"), spec("amount", "number")],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"the CSV header has no column "amount" (the schema's field); it has ["a", "b"]"#
        );
    }

    #[test]
    fn a_bad_value_names_row_column_and_value() {
        let csv = b"name,amount\na,1\nb,2\nc,12x\n";
        let err = all(reader(
            csv,
            json!({}),
            vec![spec("name", "string"), spec("amount", "number")],
        )
        .unwrap())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"row 3, column "amount": "12x" is not a number"#
        );
    }

    #[test]
    fn encoding_and_dialect_come_from_the_resource() {
        // "Café" in Latin-1, semicolons, single quotes.
        let csv = b"name;amount\n'Caf\xe9; bar';'1'\n";
        let resource = json!({"encoding": "iso-8859-1", "dialect": {"delimiter": ";", "quoteChar": "'"}});
        let rows = all(reader(
            csv,
            resource,
            vec![spec("name", "string"), spec("amount", "integer")],
        )
        .unwrap())
        .unwrap();
        assert_eq!(rows, vec![vec![Cell::Text("Café; bar".into()), Cell::Integer(1)]]);
        assert!(matches!(
            CsvFormat::of_resource(&json!({"encoding": "klingon"})),
            Err(TableError::Encoding(_))
        ));
        assert!(matches!(
            CsvFormat::of_resource(&json!({"dialect": {"delimiter": ";;"}})),
            Err(TableError::Dialect { .. })
        ));
    }

    #[test]
    fn an_unclosed_quote_fails_instead_of_filling_memory() {
        let mut csv = b"name,amount\nok,1\n\"open,2\n".to_vec();
        csv.extend(std::iter::repeat_n(b'x', (MAX_ROW_BYTES + 128 * 1024) as usize));
        let err = all(reader(&csv, json!({}), vec![spec("name", "string")]).unwrap()).unwrap_err();
        assert!(err.to_string().contains("longer than 16 MiB"), "{err}");
    }

    #[test]
    fn bytes_that_are_not_utf8_fail_their_row() {
        let err = all(reader(
            b"name,amount\nok,1\nbad\xe9,2\n",
            json!({}),
            vec![spec("name", "string")],
        )
        .unwrap())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"row 2, column "name": the value is not valid text in the resource's encoding"#
        );
    }

    #[test]
    fn a_utf8_byte_order_mark_is_not_part_of_the_first_header() {
        let rows = all(reader(
            b"\xef\xbb\xbfyear\n2014\n",
            json!({}),
            vec![spec("year", "integer")],
        )
        .unwrap())
        .unwrap();
        assert_eq!(rows, vec![vec![Cell::Integer(2014)]]);
    }
}
