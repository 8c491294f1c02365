//! Loading Fiscal Data Packages (DESIGN §7): older descriptors translated to the current form, the os-types
//! vocabulary, the FDP model as os-types' `fieldsToModel` builds it (or as the package states it), the Babbage
//! model as the pipeline builds it, fetching under the SSRF rules, CSV streaming, the star schema, and the jobs
//! that run it all through the [`Warehouse`] port.

pub mod babbage;
pub mod check;
pub mod columns;
pub mod descriptor;
pub mod fdp;
pub mod fetch;
pub mod hooks;
pub mod import;
pub mod intake;
pub mod job;
pub mod manage;
pub mod older;
pub mod star;
pub mod stated;
pub mod table;
pub mod values;
pub mod vocabulary;
pub mod warehouse;

pub use babbage::{babbage_model, dimension_tables, fact_table_name, hierarchy_name};
pub use check::{Checked, check_package};
pub use columns::column_names;
pub use descriptor::{LoadPlan, PlannedField, Problem, plan};
pub use fdp::{FdpModel, InputField, ModelErrors, fields_to_model};
pub use fetch::{FetchError, FetchPolicy, Source};
pub use hooks::{HookAnswer, HookError, HookPoster, HookTarget};
pub use intake::SubmitError;
pub use job::{
    ApiCache, LoadError, Loaded, Loader, LoaderParts, LoaderSettings, NoApiCache, Observer, Quiet, Shutdown,
};
pub use manage::{ManageError, Publish, Stats};
pub use older::{Form, Translated, translate};
pub use star::{StarLayout, staging_name};
pub use values::{Cell, ValueError, ValueFormat, read_value};
pub use vocabulary::{ColumnType, Vocabulary};
pub use warehouse::{RowSink, StagingFeed, Warehouse, WarehouseError};

/// The FDP model a load of `descriptor` uses (an older form translated first), or why it cannot be loaded.
pub fn package_model(vocabulary: &Vocabulary, descriptor: &serde_json::Value) -> Result<FdpModel, LoadError> {
    job::pipeline::plan_load(vocabulary, descriptor, "model_only").map(|(_, fdp, _)| fdp)
}
