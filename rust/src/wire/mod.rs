//! Wire codecs: memberlist's msgpack packets and streams, networkdb's protobuf
//! messages. Plain Rust, no I/O; decoders return errors, never panic.

pub mod memberlist;
pub mod crypto;
pub mod networkdb;
