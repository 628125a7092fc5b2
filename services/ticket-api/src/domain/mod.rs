//! Validated domain values: the parse-don't-validate newtypes at the API's edge, and rank keys.

pub mod input;
pub mod rank;

pub use input::{Description, Labels, ProjectName, Reason, Title, TriggeredBy, UserId};
pub use rank::Rank;
