//! Loading Fiscal Data Packages (DESIGN §7). So far: the os-types vocabulary, the FDP model as os-types'
//! `fieldsToModel` builds it, and the Babbage model as the pipeline builds it.

pub mod babbage;
pub mod columns;
pub mod descriptor;
pub mod fdp;
pub mod values;
pub mod vocabulary;

pub use babbage::{babbage_model, dimension_tables, fact_table_name, hierarchy_name};
pub use columns::column_names;
pub use descriptor::{LoadPlan, PlannedField, Problem, plan};
pub use fdp::{FdpModel, InputField, ModelErrors, fields_to_model};
pub use values::{Cell, ValueError, ValueFormat, read_value};
pub use vocabulary::{ColumnType, Vocabulary};
