//! Reading fact rows straight from the CSV. A dimension's values are looked up by the bytes they have in the
//! file and typed only the first time those bytes appear: typing and hashing every dimension cell of every row
//! was half the reading thread's time, and a fiscal file repeats a few thousand combinations over millions of
//! rows. Bytes never seen before are typed and looked up as typed cells, so two spellings of one value (` 7` and
//! `7` of an integer) still share one dimension row.

use std::collections::HashMap;

use super::{Seen, StarBuilder};
use crate::table::{TableError, TableReader};
use crate::values::Cell;

/// Key bytes one dimension's cache of raw values may hold (each entry also counted [`ENTRY_OVERHEAD`]). Past it,
/// new spellings are simply typed every time: the cache only saves work, it never decides an id.
const RAW_IDS_BYTES: usize = 4 * 1024 * 1024;
/// What an entry costs beyond its key bytes: the boxed slice's pointer and length, the id and the map's slot.
const ENTRY_OVERHEAD: usize = 40;

/// Why a row could not become a fact row.
#[derive(Debug)]
pub enum FactError {
    /// A value is not of its column's type (the first such column of the row, in order).
    Table(TableError),
    /// The dimension at this index passed [`MAX_DISTINCT`](super::MAX_DISTINCT) distinct rows.
    TooMany(usize),
}

impl From<TableError> for FactError {
    fn from(error: TableError) -> Self {
        Self::Table(error)
    }
}

/// One dimension's ids by the bytes of its values as the file holds them, each value length-prefixed.
#[derive(Debug, Default)]
pub(super) struct RawIds {
    ids: HashMap<Box<[u8]>, i64, foldhash::fast::RandomState>,
    bytes: usize,
}

impl RawIds {
    fn remember(&mut self, key: &[u8], id: i64) {
        let cost = key.len() + ENTRY_OVERHEAD;
        if self.bytes + cost <= RAW_IDS_BYTES {
            self.bytes += cost;
            self.ids.insert(key.into(), id);
        }
    }
}

/// The id of `key` in `seen`, numbering it next if new; `None` when that would pass `limit`.
fn typed_id(seen: &mut Seen, limit: usize, key: &[Cell]) -> Option<i64> {
    if let Some(&id) = seen.get(key) {
        return Some(id);
    }
    if seen.len() >= limit {
        return None;
    }
    let id = seen.len() as i64 + 1;
    seen.insert(key.to_vec(), id);
    Some(id)
}

impl StarBuilder {
    /// Reads `table`'s next row into its fact row (the measures, then one id per dimension), reusing the text
    /// buffers `fact` already holds; `false` at the end of the table. Fails on the row's first value that is not
    /// of its type, as [`TableReader::read_cells`] would, or when a dimension passes [`MAX_DISTINCT`](super::MAX_DISTINCT) distinct rows
    /// (a per-row id mapped as a dimension, say), which would otherwise hold memory in proportion to the file.
    pub fn read_fact(&mut self, table: &mut TableReader, fact: &mut Vec<Cell>) -> Result<bool, FactError> {
        if !table.next_record()? {
            return Ok(false);
        }
        match self.split_record(table, fact) {
            Ok(()) => Ok(true),
            Err(error) => {
                // Columns are typed here out of their order, and some not at all: type them all in order, so
                // the error is the row's first, whatever was cached.
                table.read_cells(&mut self.cells)?;
                Err(error)
            }
        }
    }

    fn split_record(&mut self, table: &TableReader, fact: &mut Vec<Cell>) -> Result<(), FactError> {
        let measures = self.measures.len();
        fact.resize(measures + self.dimensions.len(), Cell::Null);
        for (slot, &column) in fact.iter_mut().zip(&self.measures) {
            table.read_cell(column, slot)?;
        }
        self.cells.resize(table.width(), Cell::Null);
        for (index, columns) in self.dimensions.iter().enumerate() {
            self.raw_key.clear();
            for &column in columns {
                let raw = table.raw(column);
                // A row is at most 16 MiB (`MAX_ROW_BYTES`), so its length fits.
                self.raw_key.extend_from_slice(&(raw.len() as u32).to_le_bytes());
                self.raw_key.extend_from_slice(raw);
            }
            let raw_ids = &mut self.raw_ids[index];
            let id = match raw_ids.ids.get(self.raw_key.as_slice()) {
                Some(&id) => id,
                None => {
                    for &column in columns {
                        table.read_cell(column, &mut self.cells[column])?;
                    }
                    let key: &[Cell] = match &self.ranges[index] {
                        Some(range) => &self.cells[range.clone()],
                        None => {
                            self.scratch.clear();
                            self.scratch
                                .extend(columns.iter().map(|&i| self.cells[i].clone()));
                            &self.scratch
                        }
                    };
                    let id =
                        typed_id(&mut self.seen[index], self.limit, key).ok_or(FactError::TooMany(index))?;
                    raw_ids.remember(&self.raw_key, id);
                    id
                }
            };
            fact[measures + index] = Cell::Integer(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::worked;
    use super::*;

    fn facts(csv: &str) -> (StarBuilder, Result<Vec<Vec<Cell>>, FactError>) {
        let (_, mut builder, mut table) = worked(csv);
        let mut rows = Vec::new();
        let mut fact = Vec::new();
        let read = loop {
            match builder.read_fact(&mut table, &mut fact) {
                Ok(true) => rows.push(fact.clone()),
                Ok(false) => break Ok(rows),
                Err(error) => break Err(error),
            }
        };
        (builder, read)
    }

    #[test]
    fn two_spellings_of_one_value_share_its_dimension_row() {
        let (builder, read) = facts(
            "year,admin1_code,admin1_label,admin2_code,amount\n2014,A,Alpha,A1,1\n 2014,A,Alpha,A1,2\n\
             2014 ,A,Alpha,A1,3\n2014,A,Alpha,A1,4\n",
        );
        let years: Vec<Cell> = read.unwrap().into_iter().map(|fact| fact[2].clone()).collect();
        assert_eq!(years, vec![Cell::Integer(1); 4]);
        assert_eq!(
            builder.dimension_rows(1),
            vec![vec![Cell::Integer(1), Cell::Integer(2014)]]
        );
    }

    #[test]
    fn the_error_is_the_rows_first_bad_value_whatever_was_seen_before() {
        let (plan, _, _) = worked("year,admin1_code,admin1_label,admin2_code,amount\n");
        let order: Vec<&str> = plan.columns.iter().map(|c| c.header.as_str()).collect();
        assert_eq!(
            order,
            ["amount", "admin1_code", "admin1_label", "admin2_code", "year"]
        );
        let first_error = |rows: &str| {
            let (_, read) = facts(&format!(
                "year,admin1_code,admin1_label,admin2_code,amount\n{rows}"
            ));
            match read {
                Err(FactError::Table(TableError::Value { row, column, .. })) => (row, column),
                other => panic!("{other:?}"),
            }
        };
        // Dimension bytes seen before are not typed again; a bad amount beside them is still found.
        assert_eq!(
            first_error("2014,A,Alpha,A1,1\n2014,A,Alpha,A1,x\n"),
            (2, "amount".into())
        );
        // A bad year and a NUL in a code: the code comes first.
        assert_eq!(
            first_error("2014,A,Alpha,A1,1\nsoon,A\0,Alpha,A1,1\n"),
            (2, "admin1_code".into())
        );
        assert_eq!(
            first_error("2014,A,Alpha,A1,1\nsoon,A,Alpha,A1,1\n"),
            (2, "year".into())
        );
    }

    #[test]
    fn past_its_bound_the_cache_of_raw_values_only_stops_growing() {
        let mut raw = RawIds::default();
        let big = vec![b'x'; 1024 * 1024];
        for id in 1..=4 {
            raw.remember(&[&big[..], &[id as u8]].concat(), id);
        }
        assert_eq!(raw.ids.len(), 3, "a fourth MiB key would pass the 4 MiB bound");
        assert!(raw.bytes <= RAW_IDS_BYTES);

        // A full cache still gives every row its right id, typing what it cannot remember.
        let (_, mut builder, mut table) = worked(
            "year,admin1_code,admin1_label,admin2_code,amount\n2014,A,Alpha,A1,1\n2015,A,Alpha,A1,2\n\
             2014,A,Alpha,A1,3\n",
        );
        for cache in &mut builder.raw_ids {
            cache.bytes = RAW_IDS_BYTES;
        }
        let mut fact = Vec::new();
        let mut years = Vec::new();
        while builder.read_fact(&mut table, &mut fact).unwrap() {
            years.push(fact[2].clone());
        }
        assert_eq!(years, vec![Cell::Integer(1), Cell::Integer(2), Cell::Integer(1)]);
        assert!(builder.raw_ids.iter().all(|cache| cache.ids.is_empty()));
    }
}
