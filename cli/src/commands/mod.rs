//! One module per subcommand.

pub mod bench;
pub mod convert;
pub mod inspect;
pub mod keygen;
pub mod score;
pub mod sign;
pub mod sql;
pub mod verify;
