//! TOTP (RFC 6238) over HOTP (RFC 4226): 6 digits, 30-second steps, HMAC-SHA-1 as every
//! authenticator app expects; SHA-256/512 exist for the RFC test vectors. Also the base32
//! encoding of secrets and the `otpauth://` URI that authenticator apps scan.
use hmac::{Hmac, KeyInit, Mac};

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps accepted on either side of now, for clock drift between phone and server.
pub const DRIFT_STEPS: i64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

fn hmac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The HOTP value of `counter`, `digits` long.
pub fn hotp(algorithm: Algorithm, secret: &[u8], counter: u64, digits: u32) -> u32 {
    let message = counter.to_be_bytes();
    let digest = match algorithm {
        Algorithm::Sha1 => hmac::<Hmac<sha1::Sha1>>(secret, &message),
        Algorithm::Sha256 => hmac::<Hmac<sha2::Sha256>>(secret, &message),
        Algorithm::Sha512 => hmac::<Hmac<sha2::Sha512>>(secret, &message),
    };
    // Dynamic truncation (RFC 4226 §5.3).
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary =
        u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    binary % 10u32.pow(digits)
}

/// The time step of a unix time.
pub fn step(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECONDS)
}

pub fn code_at(secret: &[u8], step: i64) -> String {
    format!("{:0width$}", hotp(Algorithm::Sha1, secret, step as u64, DIGITS), width = DIGITS as usize)
}

/// The step whose code matches, within the drift window around `now`; constant-time compare.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step(now);
    let mut found = None;
    for candidate in current - DRIFT_STEPS..=current + DRIFT_STEPS {
        let expected = code_at(secret, candidate);
        if subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into() {
            found = Some(candidate);
        }
    }
    found
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps read secrets.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 (RFC 4648, case-insensitive, padding and spaces ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !matches!(c, '=' | ' ' | '-')) {
        let value = BASE32.iter().position(|&b| b == c.to_ascii_uppercase() as u8)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `otpauth://totp/Issuer:account?secret=…&issuer=…` (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        percent(issuer),
        percent(account),
        base32(secret),
        percent(issuer)
    )
}

/// The URI as a QR code, in SVG.
pub fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the hash size.
    #[test]
    fn rfc6238_test_vectors() {
        let sha1 = b"12345678901234567890".as_slice();
        let sha256 = b"12345678901234567890123456789012".as_slice();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let vectors: &[(i64, u32, u32, u32)] = &[
            (59, 94287082, 46119246, 90693936),
            (1111111109, 7081804, 68084774, 25091201),
            (1111111111, 14050471, 67062674, 99943326),
            (1234567890, 89005924, 91819424, 93441116),
            (2000000000, 69279037, 90698825, 38618901),
            (20000000000, 65353130, 77737706, 47863826),
        ];
        for &(time, s1, s256, s512) in vectors {
            let counter = step(time) as u64;
            assert_eq!(hotp(Algorithm::Sha1, sha1, counter, 8), s1, "sha1 at {time}");
            assert_eq!(hotp(Algorithm::Sha256, sha256, counter, 8), s256, "sha256 at {time}");
            assert_eq!(hotp(Algorithm::Sha512, sha512, counter, 8), s512, "sha512 at {time}");
        }
    }

    #[test]
    fn window_boundaries_and_drift() {
        let secret = b"12345678901234567890";
        // 59 is the last second of step 1; 60 starts step 2.
        let at_59 = code_at(secret, step(59));
        assert_eq!(matching_step(secret, &at_59, 59), Some(1));
        assert_eq!(matching_step(secret, &at_59, 60), Some(1), "one step of drift is accepted");
        assert_eq!(matching_step(secret, &at_59, 90), None, "two steps later it is refused");
        assert_eq!(matching_step(secret, "12345", 59), None);
        assert_eq!(matching_step(secret, "abcdef", 59), None);
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        let uri = otpauth_uri("Warden", "alice@example.com", b"12345678901234567890");
        assert!(uri.starts_with("otpauth://totp/Warden:alice%40example.com?secret=GEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(qr_svg(&uri).starts_with("<?xml"));
    }
}
