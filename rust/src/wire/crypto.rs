//! Placeholder for memberlist's keyring and AES-GCM layers (being written on
//! branch wire-ml); signatures only.

use super::memberlist::WireError;

#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

impl Keyring {
    pub fn new(primary: Vec<u8>, others: Vec<Vec<u8>>) -> Result<Self, WireError> {
        let mut keys = vec![primary];
        keys.extend(others);
        Ok(Keyring { keys })
    }
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }
}

pub fn encrypt_packet(kr: &Keyring, version: u8, plaintext: &[u8]) -> Vec<u8> {
    let _ = (kr, version, plaintext);
    todo!()
}
pub fn decrypt_packet(kr: &Keyring, buf: &[u8]) -> Result<Vec<u8>, WireError> {
    let _ = (kr, buf);
    todo!()
}
pub fn encrypt_stream(kr: &Keyring, version: u8, plaintext: &[u8]) -> Vec<u8> {
    let _ = (kr, version, plaintext);
    todo!()
}
pub fn decrypt_stream(kr: &Keyring, buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, WireError> {
    let _ = (kr, buf);
    todo!()
}
