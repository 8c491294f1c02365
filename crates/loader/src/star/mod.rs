//! The star schema a package loads into (reference §3.3, DESIGN §4): a fact table `T` with the measures and one
//! `<hierarchy>_id` per dimension, and a table `T_<i>` per dimension holding `_fdp__id_` and that dimension's
//! columns, one row per distinct combination. Repeated combinations in the facts are legitimate: the fact table has
//! no key over the dimension ids (the original's did, and failed on them).

use std::collections::HashMap;

use serde_json::Value;

use crate::babbage::{dimension_tables, hierarchy_name};
use crate::fdp::FdpModel;
use crate::table::ColumnSpec;
use crate::values::{Cell, ValueFormat};

mod reading;
pub use reading::FactError;

/// The most distinct rows one dimension table may hold.
pub const MAX_DISTINCT: usize = 5_000_000;

/// The key column of every dimension table.
pub const DIMENSION_KEY: &str = "_fdp__id_";

/// The primary key of every fact table: a row id the database assigns, not the dimension ids, so rows with
/// equal dimension values still load. os-api's engine (babbage) counts facts through the fact table's primary
/// key, and the legacy FDP loader babbage was written against named it `_id` too. No column name made from a
/// field can be it: those never start with `_`.
pub const FACT_KEY: &str = "_id";

/// A column's SQL type (tableschema-sql's mapping for the types a fiscal package uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Numeric,
    Integer,
    Date,
}

impl SqlType {
    fn of(data_type: &str) -> Self {
        match data_type {
            "number" => Self::Numeric,
            "integer" | "year" => Self::Integer,
            "date" => Self::Date,
            _ => Self::Text,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::Numeric => "NUMERIC",
            Self::Integer => "INTEGER",
            Self::Date => "DATE",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLayout {
    pub name: String,
    pub columns: Vec<Column>,
}

/// Every table of one package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StarLayout {
    pub fact: TableLayout,
    /// In table order: `dimensions[i]` is `T_<i>`, its first column `_fdp__id_`.
    pub dimensions: Vec<TableLayout>,
}

impl StarLayout {
    /// Every table name, fact first.
    pub fn table_names(&self) -> Vec<&str> {
        std::iter::once(self.fact.name.as_str())
            .chain(self.dimensions.iter().map(|d| d.name.as_str()))
            .collect()
    }
}

/// The staging name of a table, swapped in when the load completes.
pub fn staging_name(table: &str) -> String {
    format!("{table}__new")
}

/// How the CSV's columns become the tables' rows.
#[derive(Clone, Debug)]
pub struct StarPlan {
    pub layout: StarLayout,
    /// The CSV columns to read, in the order [`StarBuilder::split`] expects.
    pub columns: Vec<ColumnSpec>,
    /// Positions in `columns` of the measures (fact-table columns) ...
    measures: Vec<usize>,
    /// ... and of each dimension's columns.
    dimensions: Vec<Vec<usize>>,
}

/// Lays out the tables for a model whose schema fields are named by column name; `headers` maps each column
/// name to the CSV header it reads from.
pub fn star_plan(fdp: &FdpModel, fact_table: &str, headers: &HashMap<String, String>) -> StarPlan {
    let empty = serde_json::Map::new();
    let fields = fdp.schema["fields"].as_object().unwrap_or(&empty);
    let mut columns: Vec<ColumnSpec> = Vec::new();
    let mut sql_types: Vec<SqlType> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut add = |source: &str| -> usize {
        if let Some(i) = names.iter().position(|n| n == source) {
            return i;
        }
        let field = fields.get(source).cloned().unwrap_or(Value::Null);
        let text = |key: &str, default: &str| {
            field
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        let format = ValueFormat {
            data_type: text("type", "string"),
            decimal_char: text("decimalChar", "."),
            group_char: text("groupChar", ","),
            format: text("format", "default"),
        };
        sql_types.push(SqlType::of(&format.data_type));
        columns.push(ColumnSpec {
            header: headers.get(source).cloned().unwrap_or_else(|| source.to_owned()),
            format,
        });
        names.push(source.to_owned());
        names.len() - 1
    };

    let source_of = |attribute: &Value| attribute["source"].as_str().unwrap_or_default().to_owned();
    let measures: Vec<usize> = fdp.model["measures"]
        .as_object()
        .unwrap_or(&empty)
        .values()
        .map(|m| add(&source_of(m)))
        .collect();
    let mut fact_columns: Vec<Column> = Vec::new();
    let mut dimension_layouts = Vec::new();
    let mut dimension_positions = Vec::new();
    for (dimension, table) in dimension_tables(fdp, fact_table) {
        let attributes = fdp.model["dimensions"][&dimension]["attributes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        // Columns in the order the fields came, as the pipeline's concatenate keeps them.
        let mut sources: Vec<String> = attributes.values().map(source_of).collect();
        let order: Vec<&String> = fields.keys().collect();
        sources.sort_by_key(|s| order.iter().position(|o| *o == s).unwrap_or(usize::MAX));
        let positions: Vec<usize> = sources.iter().map(|s| add(s)).collect();
        let mut columns = vec![Column {
            name: DIMENSION_KEY.into(),
            sql_type: SqlType::Integer,
        }];
        columns.extend(sources.iter().zip(&positions).map(|(s, _)| Column {
            name: s.clone(),
            sql_type: SqlType::Text,
        }));
        dimension_layouts.push((table, columns));
        dimension_positions.push(positions);
        fact_columns.push(Column {
            name: format!("{}_id", hierarchy_name(&dimension)),
            sql_type: SqlType::Integer,
        });
    }
    // Types are known once every column is added.
    let typed = |name: &str| names.iter().position(|n| n == name).map(|i| sql_types[i]);
    let mut fact: Vec<Column> = measures
        .iter()
        .map(|&i| Column {
            name: names[i].clone(),
            sql_type: sql_types[i],
        })
        .collect();
    fact.extend(fact_columns);
    let dimensions = dimension_layouts
        .into_iter()
        .map(|(name, columns)| TableLayout {
            name,
            columns: columns
                .into_iter()
                .map(|c| Column {
                    sql_type: if c.name == DIMENSION_KEY {
                        SqlType::Integer
                    } else {
                        typed(&c.name).unwrap_or(SqlType::Text)
                    },
                    name: c.name,
                })
                .collect(),
        })
        .collect();
    StarPlan {
        layout: StarLayout {
            fact: TableLayout {
                name: fact_table.to_owned(),
                columns: fact,
            },
            dimensions,
        },
        columns,
        measures,
        dimensions: dimension_positions,
    }
}

/// The distinct rows seen of one dimension, by their cells. foldhash rather than SipHash: hashing every
/// dimension of every row was a tenth of a load's time; its per-process random seed keeps crafted collisions
/// impractical, and [`MAX_DISTINCT`] bounds the map whatever the file holds.
type Seen = HashMap<Vec<Cell>, i64, foldhash::fast::RandomState>;

/// Splits rows into fact rows and the distinct dimension rows, numbering each distinct combination from 1 in the
/// order it first appears. Memory grows with the distinct combinations only, never with the row count.
#[derive(Debug)]
pub struct StarBuilder {
    measures: Vec<usize>,
    dimensions: Vec<Vec<usize>>,
    /// Each dimension's columns as one range of the row's cells, when they are adjacent (as `star_plan` lays
    /// them out), so a row's key is looked up in place instead of copied.
    ranges: Vec<Option<std::ops::Range<usize>>>,
    seen: Vec<Seen>,
    /// A key gathered from columns that are not adjacent.
    scratch: Vec<Cell>,
    /// Each dimension's ids by the bytes its values had in the file (see [`reading`]).
    raw_ids: Vec<reading::RawIds>,
    /// The current row's typed cells, for the dimensions whose bytes were not seen before.
    cells: Vec<Cell>,
    /// The current row's bytes of one dimension.
    raw_key: Vec<u8>,
    /// Distinct rows one dimension may hold: [`MAX_DISTINCT`] (tests lower it to reach it).
    limit: usize,
}

impl StarBuilder {
    pub fn new(plan: &StarPlan) -> Self {
        let ranges = plan
            .dimensions
            .iter()
            .map(|positions| {
                let first = *positions.first()?;
                let adjacent = positions.iter().enumerate().all(|(k, &p)| p == first + k);
                adjacent.then(|| first..first + positions.len())
            })
            .collect();
        Self {
            measures: plan.measures.clone(),
            dimensions: plan.dimensions.clone(),
            ranges,
            seen: vec![Seen::default(); plan.dimensions.len()],
            scratch: Vec::new(),
            raw_ids: (0..plan.dimensions.len())
                .map(|_| reading::RawIds::default())
                .collect(),
            cells: Vec::new(),
            raw_key: Vec::new(),
            limit: MAX_DISTINCT,
        }
    }

    /// How many dimension tables there are.
    pub fn dimension_count(&self) -> usize {
        self.seen.len()
    }

    /// Dimension `index`'s rows (`_fdp__id_` first), in id order.
    pub fn dimension_rows(&self, index: usize) -> Vec<Vec<Cell>> {
        let mut rows: Vec<(i64, &Vec<Cell>)> = self.seen[index].iter().map(|(k, id)| (*id, k)).collect();
        rows.sort_by_key(|(id, _)| *id);
        rows.into_iter()
            .map(|(id, key)| {
                let mut row = Vec::with_capacity(key.len() + 1);
                row.push(Cell::Integer(id));
                row.extend(key.iter().cloned());
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdp::{fields_to_model, worked_example};
    use crate::table::{CsvFormat, TableReader};
    use crate::vocabulary::Vocabulary;

    #[test]
    fn the_worked_example_lays_out_a_fact_table_and_two_dimension_tables() {
        let fdp = fields_to_model(&Vocabulary::embedded().unwrap(), &worked_example()).unwrap();
        let plan = star_plan(&fdp, "t", &HashMap::new());
        fn names(t: &TableLayout) -> Vec<(&str, SqlType)> {
            t.columns.iter().map(|c| (c.name.as_str(), c.sql_type)).collect()
        }
        assert_eq!(
            names(&plan.layout.fact),
            vec![
                ("amount", SqlType::Numeric),
                ("administrative_classification_id", SqlType::Integer),
                ("date_id", SqlType::Integer)
            ]
        );
        assert_eq!(plan.layout.dimensions[0].name, "t_0");
        assert_eq!(
            names(&plan.layout.dimensions[0]),
            vec![
                (DIMENSION_KEY, SqlType::Integer),
                ("admin1_code", SqlType::Text),
                ("admin1_label", SqlType::Text),
                ("admin2_code", SqlType::Text)
            ]
        );
        assert_eq!(
            names(&plan.layout.dimensions[1]),
            vec![(DIMENSION_KEY, SqlType::Integer), ("year", SqlType::Integer)]
        );
    }

    /// The worked example's plan and a reader over `csv` (a header row, then data rows).
    pub(super) fn worked(csv: &str) -> (StarPlan, StarBuilder, TableReader) {
        let fdp = fields_to_model(&Vocabulary::embedded().unwrap(), &worked_example()).unwrap();
        let plan = star_plan(&fdp, "t", &HashMap::new());
        let builder = StarBuilder::new(&plan);
        let format = CsvFormat::of_resource(&serde_json::json!({})).unwrap();
        let reader = Box::new(std::io::Cursor::new(csv.as_bytes().to_vec()));
        let table = TableReader::open(reader, &format, plan.columns.clone(), &[]).unwrap();
        (plan, builder, table)
    }

    #[test]
    fn repeated_combinations_share_one_dimension_row() {
        let (_, mut builder, mut table) = worked(
            "year,admin1_code,admin1_label,admin2_code,amount\n2014,A,Alpha,A1,1\n2015,A,Alpha,A1,2\n\
             2014,A,Alpha,A1,3\n2015,A,Alpha,A1,4\n2016,A,Alpha,A1,5\n",
        );
        let mut fact = Vec::new();
        let mut next = |builder: &mut StarBuilder, fact: &mut Vec<Cell>| builder.read_fact(&mut table, fact);
        assert!(next(&mut builder, &mut fact).unwrap());
        assert_eq!(
            fact,
            vec![Cell::Number("1".into()), Cell::Integer(1), Cell::Integer(1)]
        );
        assert!(next(&mut builder, &mut fact).unwrap());
        assert_eq!(
            fact,
            vec![Cell::Number("2".into()), Cell::Integer(1), Cell::Integer(2)]
        );
        assert!(next(&mut builder, &mut fact).unwrap());
        assert_eq!(
            fact,
            vec![Cell::Number("3".into()), Cell::Integer(1), Cell::Integer(1)]
        );
        assert_eq!(builder.dimension_rows(0).len(), 1);
        assert_eq!(
            builder.dimension_rows(1),
            vec![
                vec![Cell::Integer(1), Cell::Integer(2014)],
                vec![Cell::Integer(2), Cell::Integer(2015)]
            ]
        );

        // The bound on distinct rows (5,000,000, as the README says; lowered here to reach it): a known row
        // still passes at the bound, a new one is refused and names its dimension.
        assert_eq!(MAX_DISTINCT, 5_000_000);
        builder.limit = 2;
        assert!(next(&mut builder, &mut fact).expect("a year already seen"));
        assert!(
            matches!(next(&mut builder, &mut fact), Err(FactError::TooMany(1))),
            "a third distinct year is one over the bound, in dimension 1"
        );
    }
}
