//! The value rules of a model's fields, in the words every client sees: the server checks
//! a record with them (kiln-common's record codec) and the web UI checks a form with the
//! same functions before sending it, so the two can never disagree on a rule or its
//! message. Plain functions of the rule's settings, no I/O: they compile for wasm32 too.

use tonic::codegen::http::Uri;

/// The text rules of one field.
#[derive(Debug, Clone, Copy)]
pub struct TextRules<'a> {
    /// The field type as named in the model (`text`, `email`, `url`, `enum`, …).
    pub field_type: &'a str,
    pub required: bool,
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    /// The pattern as written in the model (for the message); matching is the caller's.
    pub pattern: Option<&'a str>,
    pub enum_values: &'a [String],
}

/// Checks `text` against `rules`; `matches_pattern` says whether the text matches the
/// field's pattern (the server with its compiled regex, a browser with its own engine).
pub fn check_text(rules: TextRules<'_>, text: &str, matches_pattern: impl Fn(&str) -> bool) -> Result<(), String> {
    let chars = text.chars().count();
    if text.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    if rules.required && text.trim().is_empty() {
        return Err("is required".into());
    }
    if let Some(min) = rules.min_length
        && (chars as i64) < min
    {
        return Err(format!("must be at least {min} characters"));
    }
    if let Some(max) = rules.max_length
        && (chars as i64) > max
    {
        return Err(format!("must be at most {max} characters"));
    }
    if let Some(pattern) = rules.pattern
        && !matches_pattern(text)
    {
        return Err(format!("must match {pattern}"));
    }
    match rules.field_type {
        "enum" if !rules.enum_values.iter().any(|v| v == text) => {
            Err(format!("must be one of {}", rules.enum_values.join(", ")))
        }
        "email" if !looks_like_email(text) => Err("must be an email address".into()),
        "url" if !looks_like_url(text) => Err("must be an http or https URL".into()),
        _ => Ok(()),
    }
}

/// Checks a number against a field's bounds.
pub fn check_bounds(min: Option<f64>, max: Option<f64>, n: f64) -> Result<(), String> {
    if let Some(min) = min
        && n < min
    {
        return Err(format!("must be at least {min}"));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(format!("must be at most {max}"));
    }
    Ok(())
}

pub fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub fn looks_like_url(text: &str) -> bool {
    text.parse::<Uri>().is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(field_type: &'a str, enum_values: &'a [String]) -> TextRules<'a> {
        TextRules { field_type, required: false, min_length: None, max_length: None, pattern: None, enum_values }
    }

    #[test]
    fn each_rule_says_what_is_wrong() {
        let values = ["draft".to_string(), "sent".to_string()];
        let any = |_: &str| true;
        assert_eq!(check_text(TextRules { required: true, ..text("text", &[]) }, " ", any).unwrap_err(), "is required");
        assert_eq!(
            check_text(TextRules { max_length: Some(3), ..text("text", &[]) }, "abcd", any).unwrap_err(),
            "must be at most 3 characters"
        );
        assert_eq!(
            check_text(TextRules { pattern: Some("^A"), ..text("text", &[]) }, "B", |_| false).unwrap_err(),
            "must match ^A"
        );
        assert_eq!(check_text(text("enum", &values), "paid", any).unwrap_err(), "must be one of draft, sent");
        assert_eq!(check_text(text("email", &[]), "ada", any).unwrap_err(), "must be an email address");
        assert_eq!(check_text(text("url", &[]), "ftp://x", any).unwrap_err(), "must be an http or https URL");
        assert!(check_text(text("url", &[]), "https://kiln.dev/a", any).is_ok());
        assert_eq!(check_bounds(Some(0.0), None, -1.0).unwrap_err(), "must be at least 0");
        assert_eq!(check_bounds(None, Some(2.5), 3.0).unwrap_err(), "must be at most 2.5");
    }
}
