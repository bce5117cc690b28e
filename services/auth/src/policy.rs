//! The password policy, checked before any hashing: a minimum length in characters, the
//! 1 KiB ceiling, and a zxcvbn strength estimate that refuses common and guessable
//! passwords (including ones built from the username) with a reason the user can act on.
use crate::password::check_length;
use warden_common::secret::Secret;
use warden_common::{Error, Result};

#[derive(Clone, Copy, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
    /// 0 (anything) to 4 (zxcvbn's strongest).
    pub min_strength: u8,
}

impl PasswordPolicy {
    pub fn check(&self, password: &Secret, username: &str) -> Result<()> {
        check_length(password)?;
        let value = password.expose();
        if value.chars().count() < self.min_length {
            return Err(Error::validation(format!("password must be at least {} characters", self.min_length)));
        }
        if self.min_strength == 0 {
            return Ok(());
        }
        let estimate = zxcvbn::zxcvbn(value, &[username, "warden"]);
        let score = u8::from(estimate.score());
        if score < self.min_strength {
            let why = estimate
                .feedback()
                .map(|f| f.to_string().trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "it is easy to guess".to_owned());
            return Err(Error::validation(format!(
                "password is too weak (strength {score} of 4, {} required): {why}",
                self.min_strength
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy { min_length: 12, min_strength: 3 }
    }

    #[test]
    fn refuses_short_common_and_username_based_passwords() {
        let p = policy();
        assert!(p.check(&Secret::new("short"), "alice").unwrap_err().detail.contains("at least 12"));
        let common = p.check(&Secret::new("password1234"), "alice").unwrap_err();
        assert!(common.detail.contains("too weak"), "{}", common.detail);
        assert!(p.check(&Secret::new("alicealice123"), "alice").is_err());
        assert!(p.check(&Secret::new("x".repeat(1025)), "alice").is_err());
        p.check(&Secret::new("correct horse battery staple"), "alice").unwrap();
        // Strength 0 keeps only the length rules.
        PasswordPolicy { min_length: 4, min_strength: 0 }.check(&Secret::new("1234"), "alice").unwrap();
    }
}
