//! Field rules shared by the API edge and the state machine. The store re-checks every
//! rule in apply (a command can reach the log from any client), the edge checks them
//! first to answer early with a clear message.

use crate::command::Rejection;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;
/// Longest e-mail address, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 5_000;
/// Longest group name, in characters.
pub const MAX_GROUP_NAME: usize = 100;
/// Longest group description, in characters.
pub const MAX_GROUP_DESCRIPTION: usize = 1_000;
/// Longest appointment, in milliseconds (31 days).
pub const MAX_APPOINTMENT_MS: i64 = 31 * 24 * 3_600_000;
/// Longest range a listing may ask for (366 days).
pub const MAX_RANGE_MS: i64 = 366 * 24 * 3_600_000;
/// Instants must lie within years 1970..=9999 so they render as RFC 3339.
pub const MAX_INSTANT_MS: i64 = 253_402_300_799_999;

/// Normalise and check a username: 3–32 of `[a-z0-9_.-]`, case-insensitive.
pub fn username(raw: &str) -> Result<String, Rejection> {
    let name = raw.trim().to_ascii_lowercase();
    if !(3..=32).contains(&name.len()) {
        return Err(Rejection::invalid("username", "must be 3 to 32 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(Rejection::invalid(
            "username",
            "may contain only letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(name)
}

/// Normalise and check an e-mail address (one `@`, non-empty local part, dotted domain).
pub fn email(raw: &str) -> Result<String, Rejection> {
    let email = raw.trim().to_ascii_lowercase();
    let bad = || Rejection::invalid("email", "must be an e-mail address like name@example.org");
    if email.len() > MAX_EMAIL || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(email)
}

/// Check a free-text field: trimmed, no control characters except newlines and tabs in
/// long text, at most `max` characters; `required` forbids empty.
pub fn text(field: &str, raw: &str, max: usize, required: bool) -> Result<String, Rejection> {
    let value = raw.trim();
    if required && value.is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Rejection::invalid(field, format!("must be at most {max} characters")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Rejection::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// Check a group name: required, at most [`MAX_GROUP_NAME`] characters.
pub fn group_name(raw: &str) -> Result<String, Rejection> {
    text("name", raw, MAX_GROUP_NAME, true)
}

/// Check a group description: at most [`MAX_GROUP_DESCRIPTION`] characters, may be empty.
pub fn group_description(raw: &str) -> Result<String, Rejection> {
    text("description", raw, MAX_GROUP_DESCRIPTION, false)
}

/// Check an appointment interval: `start < end`, both renderable, at most 31 days long.
pub fn interval(start_ms: i64, end_ms: i64) -> Result<(), Rejection> {
    for (field, v) in [("start", start_ms), ("end", end_ms)] {
        if !(0..=MAX_INSTANT_MS).contains(&v) {
            return Err(Rejection::invalid(field, "must be between 1970 and 9999"));
        }
    }
    if start_ms >= end_ms {
        return Err(Rejection::invalid("end", "must be after start"));
    }
    if end_ms - start_ms > MAX_APPOINTMENT_MS {
        return Err(Rejection::invalid("end", "an appointment may last at most 31 days"));
    }
    Ok(())
}

/// Check a listing range: `start < end`, at most 366 days.
pub fn range(start_ms: i64, end_ms: i64) -> Result<(), Rejection> {
    for (field, v) in [("start", start_ms), ("end", end_ms)] {
        if !(0..=MAX_INSTANT_MS).contains(&v) {
            return Err(Rejection::invalid(field, "must be between 1970 and 9999"));
        }
    }
    if start_ms >= end_ms {
        return Err(Rejection::invalid("end", "must be after start"));
    }
    if end_ms - start_ms > MAX_RANGE_MS {
        return Err(Rejection::invalid("end", "a range may span at most 366 days"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_restricted() {
        assert_eq!(username("  Alice.B-2 ").unwrap(), "alice.b-2");
        assert!(username("ab").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(username("al ice").is_err());
        assert!(username("alice<script>").is_err());
        assert!(username("ålice").is_err());
    }

    #[test]
    fn emails_need_a_dotted_domain() {
        assert_eq!(email("Bob@Example.org").unwrap(), "bob@example.org");
        for bad in [
            "bob",
            "@example.org",
            "bob@example",
            "bob@@x.org",
            "bob@.org",
            "b ob@x.org",
        ] {
            assert!(email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(text("title", "  hi ", 10, true).unwrap(), "hi");
        assert!(text("title", "   ", 10, true).is_err());
        assert_eq!(text("description", "", 10, false).unwrap(), "");
        assert!(text("title", &"x".repeat(11), 10, true).is_err());
        assert!(text("title", "a\u{0}b", 10, true).is_err());
        assert_eq!(text("d", "a\nb", 10, false).unwrap(), "a\nb");
    }

    #[test]
    fn group_names_are_required_and_both_group_texts_bounded() {
        assert_eq!(group_name(" Team ").unwrap(), "Team");
        assert!(group_name(" ").is_err());
        assert!(group_name(&"n".repeat(MAX_GROUP_NAME + 1)).is_err());
        assert_eq!(group_description("").unwrap(), "");
        assert!(group_description(&"d".repeat(MAX_GROUP_DESCRIPTION)).is_ok());
        assert!(group_description(&"d".repeat(MAX_GROUP_DESCRIPTION + 1)).is_err());
    }

    #[test]
    fn intervals_are_half_open_bounded_and_ordered() {
        assert!(interval(0, 1).is_ok());
        assert!(interval(5, 5).is_err());
        assert!(interval(6, 5).is_err());
        assert!(interval(-1, 5).is_err());
        assert!(interval(0, MAX_APPOINTMENT_MS + 1).is_err());
        assert!(range(0, MAX_RANGE_MS).is_ok());
        assert!(range(0, MAX_RANGE_MS + 1).is_err());
    }
}
