//! What users type into identity calls, parsed once: [`Email`], [`Password`],
//! display names and settings. Every rule failure becomes a field violation.

use kiln_common::error::FieldViolation;

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;
const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A normalised (trimmed, lower-cased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let email = raw.trim().to_lowercase();
        let bad = |why: &str| Err(FieldViolation::new("email", why));
        if email.is_empty() {
            return bad("is required");
        }
        if email.len() > 254 {
            return bad("must be at most 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return bad("is not an email address (expected name@example.com)");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return bad("is not an email address (expected name@example.com)");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, the default display name.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or(&self.0)
    }
}

/// A password that meets the rules stated in its error.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str, email: Option<&Email>) -> Result<Self, FieldViolation> {
        let rules = format!(
            "must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, not only letters or only digits, and not the email address"
        );
        let chars = raw.chars().count();
        let only_letters = raw.chars().all(char::is_alphabetic);
        let only_digits = raw.chars().all(|c| c.is_ascii_digit());
        let is_email = email.is_some_and(|e| raw.trim().eq_ignore_ascii_case(e.as_str()));
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) || only_letters || only_digits || is_email {
            return Err(FieldViolation::new("password", rules));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
pub fn display_name(raw: &str) -> Result<String, FieldViolation> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldViolation::new("display_name", "must not be empty"));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(FieldViolation::new("display_name", "must be at most 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldViolation::new("display_name", "must not contain control characters"));
    }
    Ok(name.to_string())
}

pub const THEMES: &[&str] = &["system", "light", "dark"];

pub fn theme(raw: &str) -> Result<String, FieldViolation> {
    if THEMES.contains(&raw) {
        Ok(raw.to_string())
    } else {
        Err(FieldViolation::new("theme", "must be one of system, light, dark"))
    }
}

/// A BCP 47-shaped language tag such as `en` or `pt-BR`.
pub fn locale(raw: &str) -> Result<String, FieldViolation> {
    let mut parts = raw.split('-');
    let language_ok =
        parts.next().is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if language_ok && rest_ok && raw.len() <= 35 {
        Ok(raw.to_string())
    } else {
        Err(FieldViolation::new("locale", "must be a language tag such as en or pt-BR"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@exa_mple.com",
            "ada..x@example.com",
            "ada@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} passed");
        }
        assert_eq!(Email::parse("ada.l+kiln@mail.example.org").unwrap().local_part(), "ada.l+kiln");
    }

    #[test]
    fn password_rules_are_stated_and_enforced() {
        let email = Email::parse("ada@example.com").unwrap();
        for bad in ["short1", "onlyletterslong", "12345678901", "ada@example.com"] {
            let err = Password::parse(bad, Some(&email)).unwrap_err();
            assert_eq!(err.field, "password");
            assert!(err.description.contains("10 to 128 characters"));
        }
        assert!(Password::parse(&"a1".repeat(65), None).is_err());
        assert!(Password::parse("correct horse 9", Some(&email)).is_ok());
        assert_eq!(format!("{:?}", Password::parse("correct horse 9", None).unwrap()), "Password(…)");
    }

    #[test]
    fn settings_are_checked() {
        assert!(theme("dark").is_ok());
        assert!(theme("neon").is_err());
        assert!(locale("pt-BR").is_ok());
        assert!(locale("en").is_ok());
        assert!(locale("e").is_err());
        assert!(locale("en_US").is_err());
        assert!(display_name("  Ada  ").is_ok_and(|n| n == "Ada"));
        assert!(display_name("a\u{0007}b").is_err());
        assert!(display_name(" ").is_err());
    }
}
