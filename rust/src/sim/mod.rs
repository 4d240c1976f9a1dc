//! The virtual clock and network that drive many protocol machines in one
//! process (the simulator, and the Rust tests of the protocol). Machines are
//! the real sans-IO ones; only time and the wire are virtual.

pub mod metrics;
pub mod net;
pub mod scenario;

pub use net::{Machine, Sim, SimConfig};
pub use scenario::{Params, Report, Runner, Scenario};
