//! The pure domain of todoke: the codes, identities and rules every other crate shares.
//!
//! Nothing here touches a disk, a socket or a clock it was not handed. Storage, statistics and
//! the web layer call into this crate; this crate calls into none of them. That keeps the rules
//! (who may see what, how an audit chain is hashed, what a valid prefecture code is) in one place
//! that is cheap to test exhaustively.

pub mod account;
pub mod audit;
pub mod codes;
pub mod counting;
pub mod dates;
pub mod i18n;
pub mod notification;
pub mod policy;
pub mod validation;

pub use account::{Login, Principal, Role, Scope, UserId};
pub use codes::{HealthCentreCode, InstitutionCode, PrefectureCode};
pub use i18n::{Lang, Message};
pub use validation::FieldError;
