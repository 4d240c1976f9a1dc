//! memberlist 0.2.2's keyring and AES-GCM encryption (security.go, keyring.go,
//! net.go).
//!
//! An encrypted payload is `[version][12-byte random nonce][ciphertext + 16-byte
//! GCM tag]`, with AES-128/192/256 chosen by the key length (16/24/32 bytes).
//! Version 1 (used at protocol version >= 2) encrypts the plaintext as is;
//! version 0 (protocol version 1) PKCS7-pads it to 16 bytes first. Packets
//! (UDP) have no additional data. A stream (TCP) message is byte 10, a
//! big-endian u32 length of the encrypted payload, then the payload, and those
//! first 5 bytes are the GCM additional data. Decryption tries every key of
//! the ring, primary first, and accepts both versions.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};

use super::memberlist::{msg_type, WireError, MAX_PUSH_STATE_BYTES};

type Aes192Gcm = AesGcm<Aes192, U12>;

const VERSION_SIZE: usize = 1;
const NONCE_SIZE: usize = 12;
const TAG_SIZE: usize = 16;
const BLOCK_SIZE: usize = 16;
/// Length of a stream message's header (byte 10 + u32 length), which is also
/// its additional authenticated data.
pub const STREAM_HEADER_LEN: usize = 5;

/// Checks a key's length: 16, 24 or 32 bytes (AES-128/192/256).
pub fn validate_key(key: &[u8]) -> Result<(), WireError> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        n => Err(WireError::Crypto(format!(
            "key size must be 16, 24 or 32 bytes, not {n}"
        ))),
    }
}

#[derive(Clone)]
enum Cipher {
    A128(Aes128Gcm),
    A192(Aes192Gcm),
    A256(Aes256Gcm),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self, WireError> {
        let bad = |_| WireError::Crypto(format!("bad key length {}", key.len()));
        Ok(match key.len() {
            16 => Cipher::A128(Aes128Gcm::new_from_slice(key).map_err(bad)?),
            24 => Cipher::A192(Aes192Gcm::new_from_slice(key).map_err(bad)?),
            32 => Cipher::A256(Aes256Gcm::new_from_slice(key).map_err(bad)?),
            n => {
                return Err(WireError::Crypto(format!(
                    "key size must be 16, 24 or 32 bytes, not {n}"
                )))
            }
        })
    }

    fn seal(&self, nonce: &[u8; NONCE_SIZE], msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let n = Nonce::from_slice(nonce);
        let p = Payload { msg, aad };
        let r = match self {
            Cipher::A128(c) => c.encrypt(n, p),
            Cipher::A192(c) => c.encrypt(n, p),
            Cipher::A256(c) => c.encrypt(n, p),
        };
        // AES-GCM encryption only fails for messages beyond 64 GiB.
        r.unwrap_or_default()
    }

    fn open(&self, nonce: &[u8], msg: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if nonce.len() != NONCE_SIZE {
            return None;
        }
        let n = Nonce::from_slice(nonce);
        let p = Payload { msg, aad };
        match self {
            Cipher::A128(c) => c.decrypt(n, p),
            Cipher::A192(c) => c.decrypt(n, p),
            Cipher::A256(c) => c.decrypt(n, p),
        }
        .ok()
    }
}

/// memberlist's keyring: the first key is the primary one (used to encrypt),
/// all are tried to decrypt, primary first.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(Vec<u8>, Cipher)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print key material
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    /// A keyring with `primary` first, then `others` in order (duplicates are
    /// dropped), as memberlist's `NewKeyring(others, primary)`.
    pub fn new(primary: &[u8], others: &[Vec<u8>]) -> Result<Self, WireError> {
        let mut k = Keyring {
            keys: vec![(primary.to_vec(), Cipher::new(primary)?)],
        };
        for key in others {
            k.install(key)?;
        }
        Ok(k)
    }

    /// Adds a key for decryption (not primary). Installing a key that is
    /// already there does nothing.
    pub fn install(&mut self, key: &[u8]) -> Result<(), WireError> {
        validate_key(key)?;
        if !self.keys.iter().any(|(k, _)| k == key) {
            self.keys.push((key.to_vec(), Cipher::new(key)?));
        }
        Ok(())
    }

    /// Makes an installed key the primary one; the others keep their order.
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), WireError> {
        let i = self
            .keys
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| WireError::Crypto("requested key is not in the keyring".into()))?;
        let entry = self.keys.remove(i);
        self.keys.insert(0, entry);
        Ok(())
    }

    /// Drops a key. Removing the primary key is refused; removing a key that
    /// is not there does nothing (as in memberlist).
    pub fn remove(&mut self, key: &[u8]) -> Result<(), WireError> {
        if self.primary() == key {
            return Err(WireError::Crypto(
                "removing the primary key is not allowed".into(),
            ));
        }
        self.keys.retain(|(k, _)| k != key);
        Ok(())
    }

    /// All keys, primary first.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.keys.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The key used to encrypt.
    pub fn primary(&self) -> &[u8] {
        self.keys.first().map(|(k, _)| k.as_slice()).unwrap_or(&[])
    }

    fn primary_cipher(&self) -> Option<&Cipher> {
        self.keys.first().map(|(_, c)| c)
    }
}

/// The encryption version memberlist uses at a protocol version: 0 at
/// protocol 1, 1 from protocol 2 on.
pub fn encryption_version(protocol_version: u8) -> u8 {
    if protocol_version <= 1 {
        0
    } else {
        1
    }
}

/// Length of the encrypted payload for `plain_len` bytes (Go's
/// `encryptedLength`).
pub fn encrypted_length(version: u8, plain_len: usize) -> usize {
    let pad = if version == 0 {
        BLOCK_SIZE - plain_len % BLOCK_SIZE
    } else {
        0
    };
    VERSION_SIZE + NONCE_SIZE + plain_len + pad + TAG_SIZE
}

/// Largest encryption overhead for a version (Go's `encryptOverhead`): 45
/// bytes for version 0, 29 for version 1.
pub fn encrypt_overhead(version: u8) -> usize {
    if version == 0 {
        45
    } else {
        29
    }
}

fn random_nonce() -> [u8; NONCE_SIZE] {
    let mut n = [0u8; NONCE_SIZE];
    if let Err(e) = getrandom::getrandom(&mut n) {
        // Never reuse or predict a GCM nonce: without randomness, stop.
        panic!("no randomness for an AES-GCM nonce: {e}");
    }
    n
}

/// Encrypts with the primary key and a given nonce. `version` 0 pads (PKCS7),
/// anything else is written as version 1 (no padding).
fn seal(
    keyring: &Keyring,
    version: u8,
    nonce: &[u8; NONCE_SIZE],
    plain: &[u8],
    aad: &[u8],
) -> Vec<u8> {
    let version = version.min(1);
    let mut out = Vec::with_capacity(encrypted_length(version, plain.len()));
    out.push(version);
    out.extend_from_slice(nonce);
    let Some(cipher) = keyring.primary_cipher() else {
        return out;
    };
    let sealed = if version == 0 {
        let pad = BLOCK_SIZE - plain.len() % BLOCK_SIZE;
        let mut padded = Vec::with_capacity(plain.len() + pad);
        padded.extend_from_slice(plain);
        padded.resize(plain.len() + pad, pad as u8);
        cipher.seal(nonce, &padded, aad)
    } else {
        cipher.seal(nonce, plain, aad)
    };
    out.extend_from_slice(&sealed);
    out
}

/// Opens an encrypted payload with any key of the ring (Go's `decryptPayload`).
fn open(keyring: &Keyring, buf: &[u8], aad: &[u8]) -> Result<Vec<u8>, WireError> {
    let (&version, rest) = buf
        .split_first()
        .ok_or_else(|| WireError::Crypto("cannot decrypt empty payload".into()))?;
    if version > 1 {
        return Err(WireError::Crypto(format!(
            "unsupported encryption version {version}"
        )));
    }
    if buf.len() < encrypted_length(version, 0) {
        return Err(WireError::Crypto(format!(
            "payload is too small to decrypt: {}",
            buf.len()
        )));
    }
    let (nonce, ct) = rest.split_at(NONCE_SIZE.min(rest.len()));
    for (_, cipher) in &keyring.keys {
        if let Some(mut plain) = cipher.open(nonce, ct, aad) {
            if version == 0 {
                // Go trusts the last byte (the data is authenticated).
                let pad = usize::from(plain.last().copied().unwrap_or(0));
                if pad > plain.len() || plain.is_empty() {
                    return Err(WireError::Crypto("bad PKCS7 padding".into()));
                }
                plain.truncate(plain.len() - pad);
            }
            return Ok(plain);
        }
    }
    Err(WireError::Crypto(
        "no installed keys could decrypt the message".into(),
    ))
}

/// Encrypts a UDP packet with the primary key: `[version][nonce][ciphertext]`.
/// `version` 0 pads (memberlist at protocol version 1); 1 does not (protocol
/// version >= 2, see `encryption_version`).
pub fn encrypt_packet(keyring: &Keyring, version: u8, plaintext: &[u8]) -> Vec<u8> {
    seal(keyring, version, &random_nonce(), plaintext, &[])
}

/// Decrypts a UDP packet with whichever key opens it; both versions.
pub fn decrypt_packet(keyring: &Keyring, buf: &[u8]) -> Result<Vec<u8>, WireError> {
    open(keyring, buf, &[])
}

fn seal_stream(keyring: &Keyring, version: u8, nonce: &[u8; NONCE_SIZE], plain: &[u8]) -> Vec<u8> {
    let len = encrypted_length(version.min(1), plain.len());
    let mut out = Vec::with_capacity(STREAM_HEADER_LEN + len);
    out.push(msg_type::ENCRYPT);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    let body = seal(keyring, version, nonce, plain, &out);
    out.extend_from_slice(&body);
    out
}

/// Encrypts a TCP stream message: byte 10, big-endian u32 length, then the
/// encrypted payload, authenticated together with those 5 header bytes.
pub fn encrypt_stream(keyring: &Keyring, version: u8, plaintext: &[u8]) -> Vec<u8> {
    seal_stream(keyring, version, &random_nonce(), plaintext)
}

/// Decrypts the encrypted message at the start of a TCP stream buffer.
/// `Ok(None)`: more bytes are needed; `Ok(Some((plain, n)))`: the first `n`
/// bytes held it. A stream message that is not encrypted (first byte not
/// 10) or announces more than memberlist's 20 MiB limit is an error.
pub fn decrypt_stream(
    keyring: &Keyring,
    buf: &[u8],
) -> Result<Option<(Vec<u8>, usize)>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != msg_type::ENCRYPT {
        return Err(WireError::Crypto(
            "encryption is configured but remote state is not encrypted".into(),
        ));
    }
    let Some(hdr) = buf.get(..STREAM_HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
    if len > MAX_PUSH_STATE_BYTES {
        return Err(WireError::Crypto(format!(
            "remote node state is larger than limit ({len})"
        )));
    }
    let Some(body) = buf.get(STREAM_HEADER_LEN..STREAM_HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((open(keyring, body, hdr)?, STREAM_HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{gen, unhex, GOLDEN};
    use proptest::prelude::*;

    const FIXED_NONCE: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    fn ring(key: &[u8]) -> Keyring {
        Keyring::new(key, &[]).unwrap()
    }

    #[test]
    fn packets_match_go() {
        let mut n = 0;
        for line in GOLDEN.lines().filter(|l| l.starts_with("enc ")) {
            let f: Vec<&str> = line.split(' ').collect();
            let (vsn, key, plain, want) = (
                f[1].parse::<u8>().unwrap(),
                unhex(f[2]),
                unhex(f[3]),
                unhex(f[4]),
            );
            let k = ring(&key);
            assert_eq!(seal(&k, vsn, &FIXED_NONCE, &plain, &[]), want, "{line}");
            assert_eq!(decrypt_packet(&k, &want).unwrap(), plain);
            // another key first in the ring: still opens
            let mut k2 = Keyring::new(&gen(99, 32, 256), &[]).unwrap();
            k2.install(&key).unwrap();
            assert_eq!(decrypt_packet(&k2, &want).unwrap(), plain);
            // a random nonce round trip
            assert_eq!(
                decrypt_packet(&k, &encrypt_packet(&k, vsn, &plain)).unwrap(),
                plain
            );
            assert_eq!(
                encrypt_packet(&k, vsn, &plain).len(),
                encrypted_length(vsn, plain.len())
            );
            n += 1;
        }
        assert_eq!(n, 36);
    }

    #[test]
    fn streams_match_go() {
        let mut n = 0;
        for line in GOLDEN.lines().filter(|l| l.starts_with("encstream ")) {
            let f: Vec<&str> = line.split(' ').collect();
            let (proto, key, plain, want) = (
                f[1].parse::<u8>().unwrap(),
                unhex(f[2]),
                unhex(f[3]),
                unhex(f[4]),
            );
            let k = ring(&key);
            assert_eq!(
                seal_stream(&k, encryption_version(proto), &FIXED_NONCE, &plain),
                want,
                "{line}"
            );
            assert_eq!(
                decrypt_stream(&k, &want).unwrap(),
                Some((plain.clone(), want.len()))
            );
            // with more bytes after it, and cut short
            let mut more = want.clone();
            more.extend_from_slice(b"next");
            assert_eq!(
                decrypt_stream(&k, &more).unwrap(),
                Some((plain.clone(), want.len()))
            );
            for cut in 0..want.len() {
                assert_eq!(decrypt_stream(&k, &want[..cut]).unwrap(), None);
            }
            // the header is authenticated
            let mut bad = want.clone();
            bad.extend_from_slice(b"x");
            bad[4] += 1;
            assert!(matches!(
                decrypt_stream(&k, &bad),
                Err(WireError::Crypto(_))
            ));
            n += 1;
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn keyring_rules() {
        let (a, b, c) = (vec![1u8; 16], vec![2u8; 24], vec![3u8; 32]);
        assert!(Keyring::new(&[0; 15], &[]).is_err());
        assert!(Keyring::new(&a, &[vec![0; 20]]).is_err());
        let mut k = Keyring::new(&a, &[b.clone(), a.clone(), b.clone()]).unwrap();
        assert_eq!(k.keys(), vec![a.clone(), b.clone()]);
        k.install(&c).unwrap();
        k.install(&c).unwrap();
        assert_eq!(k.keys(), vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!(k.primary(), &a[..]);
        k.use_key(&c).unwrap();
        assert_eq!(k.keys(), vec![c.clone(), a.clone(), b.clone()]);
        assert!(k.use_key(&[9; 16]).is_err());
        assert!(k.remove(&c).is_err());
        k.remove(&a).unwrap();
        k.remove(&a).unwrap();
        assert_eq!(k.keys(), vec![c.clone(), b.clone()]);
        assert_eq!(format!("{k:?}"), "Keyring(2 keys)");
        // encrypts with the primary only
        let sealed = encrypt_packet(&k, 1, b"x");
        assert!(decrypt_packet(&ring(&c), &sealed).is_ok());
        assert!(decrypt_packet(&ring(&b), &sealed).is_err());
    }

    #[test]
    fn decrypt_errors() {
        let k = ring(&[7; 16]);
        assert!(decrypt_packet(&k, &[]).is_err());
        assert!(decrypt_packet(&k, &[2; 64]).is_err());
        assert!(decrypt_packet(&k, &[1; 28]).is_err());
        assert!(decrypt_packet(&k, &[0; 44]).is_err());
        let mut s = encrypt_packet(&k, 1, b"hello");
        let last = s.len() - 1;
        s[last] ^= 1;
        assert!(decrypt_packet(&k, &s).is_err());
        assert!(decrypt_stream(&k, b"\x06abc").is_err());
        assert!(decrypt_stream(&k, &[10, 0x7f, 0, 0, 0]).is_err());
        // version 0 whose padding byte lies (possible only with the key)
        let bad = seal(&k, 1, &FIXED_NONCE, &[200; 3], &[]);
        let mut bad0 = bad.clone();
        bad0[0] = 0;
        // needs >= 45 bytes to be considered at all
        assert!(decrypt_packet(&k, &bad0).is_err());
        let bad = seal(&k, 1, &FIXED_NONCE, &[200; 17], &[]);
        let mut bad0 = bad.clone();
        bad0[0] = 0;
        assert!(decrypt_packet(&k, &bad0).is_err());
    }

    proptest! {
        #[test]
        fn decrypt_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = Keyring::new(&[7; 32], &[vec![8; 16]]).unwrap();
            let _ = decrypt_packet(&k, &data);
            let _ = decrypt_stream(&k, &data);
            let mut d = data.clone();
            if !d.is_empty() { d[0] = 10; }
            let _ = decrypt_stream(&k, &d);
        }

        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..300), v in 0u8..2) {
            let k = Keyring::new(&[7; 24], &[]).unwrap();
            prop_assert_eq!(decrypt_packet(&k, &encrypt_packet(&k, v, &data)).unwrap(), data.clone());
            let s = encrypt_stream(&k, v, &data);
            prop_assert_eq!(decrypt_stream(&k, &s).unwrap(), Some((data, s.len())));
        }
    }
}
