//! Helpers shared by the wire tests: the Go golden file and its encodings.

/// Bytes produced by the real Go code; see the header of the file.
pub const GOLDEN: &str = include_str!("testdata/memberlist-golden.txt");

/// Hex to bytes ("-" = empty).
pub fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The same xorshift32 generator as the Go program that made the golden file.
pub fn gen(seed: u32, n: usize, alphabet: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % alphabet) as u8
        })
        .collect()
}

/// The golden records whose first word is `kind`, split on spaces.
pub fn records(kind: &str) -> Vec<Vec<&'static str>> {
    GOLDEN
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f[0] == kind)
        .collect()
}
