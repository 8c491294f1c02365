//! A resource's bytes read as the loader reads CSV (header matched against the schema, every row typed), in a
//! dialect and encoding the first byte picks: rows or a `TableError`, never a panic, memory bounded by the row
//! limit.
#![no_main]

use conductor_loader::table::{ColumnSpec, CsvFormat, TableReader};
use conductor_loader::ValueFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, csv)) = data.split_first() else {
        return;
    };
    let resource = match choice % 4 {
        0 => serde_json::json!({}),
        1 => serde_json::json!({"dialect": {"delimiter": ";", "quoteChar": "'"}}),
        2 => serde_json::json!({"encoding": "windows-1252", "dialect": {"doubleQuote": false, "escapeChar": "\\"}}),
        _ => serde_json::json!({"encoding": "utf-16le", "dialect": {"skipInitialSpace": true}}),
    };
    let Ok(format) = CsvFormat::of_resource(&resource) else {
        return;
    };
    let spec = |header: &str, data_type: &str| ColumnSpec {
        header: header.into(),
        format: ValueFormat {
            data_type: data_type.into(),
            ..ValueFormat::default()
        },
    };
    let specs = vec![spec("a", "string"), spec("b", "number"), spec("c", "integer"), spec("d", "date")];
    let schema = ["a", "b", "c", "d"].map(String::from);
    let Ok(mut table) = TableReader::open(Box::new(std::io::Cursor::new(csv.to_vec())), &format, specs, &schema)
    else {
        return;
    };
    let mut cells = Vec::new();
    // As the loader reads: row by row, stopping at the first error.
    while let Ok(true) = table.next_record() {
        if table.read_cells(&mut cells).is_err() {
            break;
        }
    }
});
