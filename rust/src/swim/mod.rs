//! SWIM membership as hashicorp/memberlist 0.2.2 runs it, as a sans-IO state
//! machine: fed with (now, packet), (now, stream) and (now, timer), it returns
//! packets and streams to send. The asyncio transport and the simulator drive
//! the same machine.

pub mod config;
pub mod delegate;
pub mod machine;
#[cfg(test)]
mod merge_tests;
pub mod plain;
pub mod queue;
pub mod rng;
pub mod suspicion;

pub use config::Config;
pub use delegate::{Delegate, Member};
pub use machine::{Action, Memberlist, StreamBytes, SwimError};
