//! pyln's Rust core. Each module is plain Rust with its own tests; the `python`
//! feature (turned on by maturin) adds the thin PyO3 layer in `py*` modules.

pub mod bitseq;
pub mod cache;
pub mod fasthash;
pub mod idm;
pub mod intern;
pub mod networkdb;
pub mod sim;
pub mod swim;
pub mod wire;

#[cfg(feature = "python")]
mod py;
#[cfg(feature = "python")]
mod py_ndb;
#[cfg(feature = "python")]
mod py_networkdb;
#[cfg(feature = "python")]
mod py_sim;
#[cfg(feature = "python")]
mod py_swim;
