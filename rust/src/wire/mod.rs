//! Wire codecs: memberlist's msgpack packets and streams, networkdb's protobuf
//! messages. Plain Rust, no I/O; decoders return errors, never panic.

pub mod crypto;
pub mod lzw;
pub mod memberlist;
pub mod msgpack;
pub mod networkdb;

#[cfg(test)]
mod testutil;
