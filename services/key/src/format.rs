//! The API-key wire format: `wdn_<id>_<secret><checksum>`.
//!
//! - `wdn_` makes leaked keys easy for secret scanners to find.
//! - `<id>` is the key's UUID in fixed-width base62 (22 characters). It is public (it is the
//!   `prefix` users see, and the lookup index), so it carries no secret.
//! - `<secret>` is 43 base62 characters drawn uniformly from the OS CSPRNG: 43 × log2(62) ≈ 256 bits.
//! - `<checksum>` is the CRC-32 of everything before it, in 6 base62 characters, so a mistyped or
//!   truncated key is rejected without touching storage. It is not a MAC: anyone can compute it,
//!   so it filters noise, not attackers; the stored hash does that.
//!
//! Base62 keeps the key one "word" (double-click selects it) and free of URL-special characters.
use uuid::Uuid;
use warden_common::secret::random_bytes;

pub(crate) const PREFIX: &str = "wdn_";
const ID_LEN: usize = 22;
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Total length of a key; anything else is rejected before parsing.
pub(crate) const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A syntactically valid key: its checksum matched, so only the hash can tell if it is real.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedKey {
    pub(crate) id: Uuid,
}

/// The public prefix shown to users: `wdn_<id>`.
pub(crate) fn prefix(id: Uuid) -> String {
    format!("{PREFIX}{}", encode_fixed(id.as_u128(), ID_LEN))
}

/// Builds a fresh key for `id` with a new random secret.
pub(crate) fn generate(id: Uuid) -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(&prefix(id));
    key.push('_');
    key.push_str(&random_base62(SECRET_LEN));
    let checksum = crc32(key.as_bytes());
    key.push_str(&encode_fixed(checksum.into(), CHECKSUM_LEN));
    key
}

/// Checks length, shape, alphabet and checksum; never touches storage.
pub(crate) fn parse(key: &str) -> Option<ParsedKey> {
    if key.len() != KEY_LEN || !key.is_ascii() || !key.starts_with(PREFIX) {
        return None;
    }
    let (body, checksum) = key.split_at(KEY_LEN - CHECKSUM_LEN);
    let rest = &body[PREFIX.len()..];
    let (id, secret) = rest.split_at(ID_LEN);
    let secret = secret.strip_prefix('_')?;
    if !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let expected = decode_fixed(checksum)?;
    if expected != u128::from(crc32(body.as_bytes())) {
        return None;
    }
    Some(ParsedKey { id: Uuid::from_u128(decode_fixed(id)?) })
}

/// `len` characters, each uniform over the 62 symbols (rejection sampling keeps it unbiased).
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            // 248 = 4 × 62: bytes at or above it would favour the first symbols.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

fn encode_fixed(mut value: u128, len: usize) -> String {
    let mut digits = vec![b'0'; len];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    debug_assert_eq!(value, 0, "value does not fit in {len} base62 digits");
    String::from_utf8(digits).expect("alphabet is ASCII")
}

/// Decodes fixed-width base62; `None` on a foreign character or overflow.
fn decode_fixed(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(u128::from(digit))
    })
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as used by zip and GitHub tokens.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |crc, &b| TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn keys_round_trip_and_have_the_documented_shape() {
        let id = Uuid::now_v7();
        let key = generate(id);
        assert_eq!(key.len(), KEY_LEN);
        assert_eq!(KEY_LEN, 76);
        assert!(key.starts_with(&format!("{}_", prefix(id))));
        assert_eq!(parse(&key), Some(ParsedKey { id }));
        assert_eq!(parse(&generate(Uuid::max())), Some(ParsedKey { id: Uuid::max() }));
        assert_eq!(parse(&generate(Uuid::nil())), Some(ParsedKey { id: Uuid::nil() }));
    }

    #[test]
    fn ten_thousand_keys_are_distinct_and_uniform() {
        let id = Uuid::now_v7();
        let mut seen = HashSet::new();
        let mut counts: HashMap<u8, usize> = HashMap::new();
        for _ in 0..10_000 {
            let key = generate(id);
            let secret = &key[PREFIX.len() + ID_LEN + 1..KEY_LEN - CHECKSUM_LEN];
            assert_eq!(secret.len(), SECRET_LEN);
            for b in secret.bytes() {
                *counts.entry(b).or_default() += 1;
            }
            assert!(seen.insert(secret.to_owned()), "duplicate secret");
        }
        // 430,000 symbols over 62 values: about 6,935 each; a biased or stuck generator
        // (e.g. modulo bias, a constant byte) falls far outside ±10 %.
        assert_eq!(counts.len(), 62, "every symbol appears");
        let expected = 10_000.0 * SECRET_LEN as f64 / 62.0;
        for (symbol, n) in counts {
            let ratio = n as f64 / expected;
            assert!((0.9..1.1).contains(&ratio), "symbol {} appears {n} times", symbol as char);
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let candidates: Vec<u8> = ALPHABET.iter().copied().chain(*b"_-+/= .").collect();
        for _ in 0..20 {
            let key = generate(Uuid::new_v4());
            let bytes = key.as_bytes();
            for i in 0..bytes.len() {
                for &c in &candidates {
                    if c == bytes[i] {
                        continue;
                    }
                    let mut changed = bytes.to_vec();
                    changed[i] = c;
                    let changed = String::from_utf8(changed).expect("ascii");
                    assert_eq!(parse(&changed), None, "accepted {i}:{}", c as char);
                }
            }
        }
    }

    #[test]
    fn truncated_extended_and_foreign_keys_are_rejected() {
        let key = generate(Uuid::new_v4());
        assert_eq!(parse(&key[..KEY_LEN - 1]), None);
        assert_eq!(parse(&format!("{key}0")), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse(&"a".repeat(10_000)), None);
        assert_eq!(parse(&key.replacen("wdn_", "xdn_", 1)), None);
        // Two adjacent characters swapped (a common typo).
        let mut swapped = key.clone().into_bytes();
        swapped.swap(40, 41);
        if swapped != key.as_bytes() {
            assert_eq!(parse(&String::from_utf8(swapped).expect("ascii")), None);
        }
        // Multi-byte input of the right byte length must not panic on a char boundary.
        let wide = format!("{PREFIX}{}", "é".repeat((KEY_LEN - PREFIX.len()) / 2));
        assert_eq!(wide.len(), KEY_LEN);
        assert_eq!(parse(&wide), None);
    }
}
