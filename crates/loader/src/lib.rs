//! Loading Fiscal Data Packages (DESIGN §7). This first part: the os-types vocabulary and the FDP model as
//! os-types' `fieldsToModel` builds it.

pub mod fdp;
pub mod vocabulary;

pub use fdp::{FdpModel, InputField, ModelErrors, fields_to_model};
pub use vocabulary::{ColumnType, Vocabulary};
