//! The JSON Schemas of the rules the server checks by hand (`agenda_shared::validate`, the
//! extractors, the handlers), so the OpenAPI document states exactly what is accepted, and
//! of the closed sets of values it writes (statuses, canonical usernames, cursors). Each
//! function is a `#[schema(schema_with = …)]` / `#[param(schema_with = …)]` target.
//!
//! Text rules trim surrounding whitespace first (Rust's `char::is_whitespace`, which is
//! not ECMA-262's `\s`: it has U+0085 and lacks U+FEFF), so the patterns spell that class
//! out and carry the length bounds themselves: a `maxLength` on the raw string would
//! refuse padded values the server accepts. Lengths count characters, as JSON Schema
//! does. What no schema can say (an end after its start, a range of at most 366 days, an
//! e-mail address of at most 254 bytes, state-dependent rules) is said in the descriptions.

use agenda_shared::query::MAX_PAGE;
use agenda_shared::validate::{self, MAX_GROUP_DESCRIPTION, MAX_GROUP_NAME};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

use crate::auth::{MAX_PASSWORD, MIN_PASSWORD};

/// What `str::trim` strips (`char::is_whitespace`), as the inside of a character class.
const WS_CHARS: &str = r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// A character that is neither whitespace nor a control character.
const VISIBLE: &str = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// A character free text may hold: anything but control characters other than tab, line
/// feed and carriage return.
const TEXT_CHAR: &str = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]";
/// An e-mail character: neither whitespace, nor a control character, nor `@`.
const EMAIL_CHAR: &str = r"[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// The same without `.`.
const EMAIL_CHAR_NO_DOT: &str = r"[^@.\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Longest time text accepted (see `views::parse_time`).
pub(crate) const MAX_TIME_TEXT: usize = 64;
/// Longest audit filter value, in characters.
pub(crate) const MAX_FILTER: usize = 200;
/// Highest rank anyone holds (the store's limit on a creator's rank).
pub(crate) const MAX_RANK: u32 = 1_000_000;

fn ws() -> String {
    format!("[{WS_CHARS}]")
}

/// Optional surrounding whitespace around `core`, which is itself optional unless `required`.
fn trimmed(core: &str, required: bool) -> String {
    let ws = ws();
    if required {
        format!("^{ws}*{core}{ws}*$")
    } else {
        format!("^{ws}*(?:{core})?{ws}*$")
    }
}

/// Free text of 1..=`max` characters once trimmed (`validate::text`), no control
/// characters but tab and line breaks inside.
fn text_core(max: usize) -> String {
    match max {
        0 | 1 => VISIBLE.to_owned(),
        _ => format!("{VISIBLE}(?:{TEXT_CHAR}{{0,{}}}{VISIBLE})?", max - 2),
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn string_or_null() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

fn text(b: ObjectBuilder, max: usize, required: bool, what: &str) -> Object {
    let rule = if required {
        format!("1–{max} characters once surrounding whitespace is trimmed")
    } else {
        format!("at most {max} characters once surrounding whitespace is trimmed (may be empty)")
    };
    b.pattern(Some(trimmed(&text_core(max), required)))
        .description(Some(format!(
            "{what}: {rule}; no control characters except tab, line feed and carriage return."
        )))
        .build()
}

/// A title (required).
pub fn title() -> Object {
    text(string(), validate::MAX_TITLE, true, "Title")
}

/// A new title, or `null` to keep it.
pub fn title_or_null() -> Object {
    text(
        string_or_null(),
        validate::MAX_TITLE,
        true,
        "New title (`null`: unchanged)",
    )
}

/// A description, `null` or absent for none.
pub fn description_or_null() -> Object {
    text(string_or_null(), validate::MAX_DESCRIPTION, false, "Description")
}

/// A group's name.
pub fn group_name() -> Object {
    text(string(), MAX_GROUP_NAME, true, "Name")
}

/// A group's new name, or `null` to keep it.
pub fn group_name_or_null() -> Object {
    text(string_or_null(), MAX_GROUP_NAME, true, "New name (`null`: unchanged)")
}

/// A group's description.
pub fn group_description_or_null() -> Object {
    text(string_or_null(), MAX_GROUP_DESCRIPTION, false, "Description")
}

/// A display name, or `null` for the default.
pub fn display_name_or_null() -> Object {
    text(
        string_or_null(),
        validate::MAX_DISPLAY_NAME,
        true,
        "Name shown to others (`null`: the username at registration, unchanged in a patch)",
    )
}

fn username_pattern() -> String {
    trimmed("[A-Za-z0-9_.-]{3,32}", true)
}

/// The server's e-mail rule, exactly. Deliberately no `format: email`: the rule is looser
/// than RFC 5321/5322 (`a..b@x.y` and `ü@x.y` are accepted), so the format would call
/// addresses invalid that the server takes.
fn email_pattern() -> String {
    trimmed(
        &format!("{EMAIL_CHAR}+@{EMAIL_CHAR_NO_DOT}{EMAIL_CHAR}*\\.{EMAIL_CHAR}*{EMAIL_CHAR_NO_DOT}"),
        true,
    )
}

const USERNAME_RULE: &str = "Username: 3–32 of `a-z 0-9 _ . -` once trimmed and lower-cased (stored lower-case).";
const EMAIL_RULE: &str = "E-mail address `local@domain.tld`, once trimmed: no whitespace or control \
characters, one `@`, a dotted domain that neither starts nor ends with `.`, at most 254 bytes (UTF-8) \
— a byte limit no JSON Schema keyword states (stored lower-case).";

/// A username as typed (trimmed and lower-cased by the server).
pub fn username() -> Object {
    string()
        .pattern(Some(username_pattern()))
        .description(Some(USERNAME_RULE))
        .build()
}

/// A new username, or `null` to keep it.
pub fn username_or_null() -> Object {
    string_or_null()
        .pattern(Some(username_pattern()))
        .description(Some(format!(
            "{USERNAME_RULE} Changing it needs `current_password`; `null`: unchanged."
        )))
        .build()
}

/// An e-mail address as typed.
pub fn email() -> Object {
    string()
        .pattern(Some(email_pattern()))
        .description(Some(EMAIL_RULE))
        .build()
}

/// A new e-mail address, or `null` to keep it.
pub fn email_or_null() -> Object {
    string_or_null()
        .pattern(Some(email_pattern()))
        .description(Some(format!(
            "{EMAIL_RULE} Changing it needs `current_password`; `null`: unchanged."
        )))
        .build()
}

/// What `login` and a member lookup take: a username or an e-mail address, non-empty once
/// trimmed and at most 254 characters (longer matches nobody).
fn lookup_pattern() -> String {
    let not_ws = format!("[^{WS_CHARS}]");
    trimmed(&format!("{not_ws}(?:[\\s\\S]{{0,252}}{not_ws})?"), true)
}

/// A login name (username or e-mail), or `null`.
pub fn login_or_null() -> Object {
    string_or_null()
        .pattern(Some(lookup_pattern()))
        .description(Some(
            "A username or an e-mail address: 1–254 characters once trimmed. Give exactly one of \
             `login`, `username`, `email`.",
        ))
        .build()
}

/// A member to invite by username or e-mail, or `null`.
pub fn member_lookup_or_null() -> Object {
    string_or_null()
        .pattern(Some(lookup_pattern()))
        .description(Some(
            "The user's username or e-mail address (1–254 characters once trimmed), instead of \
             `user_id`; 404 when nobody has it.",
        ))
        .build()
}

/// A new password.
pub fn new_password() -> Object {
    string()
        .min_length(Some(MIN_PASSWORD))
        .max_length(Some(MAX_PASSWORD))
        .write_only(Some(true))
        .description(Some(format!(
            "{MIN_PASSWORD}–{MAX_PASSWORD} characters, taken as is (not trimmed)."
        )))
        .build()
}

fn instant(b: ObjectBuilder, what: &str) -> Object {
    b.format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .max_length(Some(MAX_TIME_TEXT))
        .description(Some(format!(
            "{what}: RFC 3339 with an offset (`2030-01-02T09:30:00Z`, `…+01:00`), at most \
             {MAX_TIME_TEXT} characters; in UTC between 1970-01-01 and 9999-12-31."
        )))
        .build()
}

/// An appointment's start.
pub fn start_time() -> Object {
    instant(string(), "Start (alias `start`)")
}

/// An appointment's end.
pub fn end_time() -> Object {
    instant(
        string(),
        "End, exclusive (alias `end`); after the start, at most 31 days after it",
    )
}

/// A new start, or `null` to keep it.
pub fn start_time_or_null() -> Object {
    instant(
        string_or_null(),
        "New start (alias `start`; `null`: unchanged); the resulting appointment must still end \
         after it starts and last at most 31 days",
    )
}

/// A new end, or `null` to keep it.
pub fn end_time_or_null() -> Object {
    instant(
        string_or_null(),
        "New end (alias `end`; `null`: unchanged); the resulting appointment must still end \
         after it starts and last at most 31 days",
    )
}

/// A range start in a query string.
pub fn range_start() -> Object {
    instant(
        string(),
        "Range start (default: now, or the end minus the default span)",
    )
}

/// A range end in a query string.
pub fn range_end() -> Object {
    instant(
        string(),
        "Range end, exclusive (default: the start plus the default span); after the start, at \
         most 366 days after it",
    )
}

/// An instant filter (`since`), any year RFC 3339 can write.
pub fn since() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .max_length(Some(MAX_TIME_TEXT))
        .description(Some(
            "Only rows at or after this instant: RFC 3339 with an offset, at most 64 characters.",
        ))
        .build()
}

fn one_of(b: ObjectBuilder, values: &[&str], description: &str) -> Object {
    b.enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

/// Who sees an appointment's details, on input.
pub fn privacy_or_null() -> Object {
    let mut values: Vec<serde_json::Value> = PRIVACY.iter().map(|p| (*p).into()).collect();
    values.push(serde_json::Value::Null);
    string_or_null()
        .enum_values(Some(values))
        .description(Some(
            "Who sees the title and description: `full` (default: anyone sharing a group with \
             you), `freebusy` (only members senior to you in a hierarchical group), `private` \
             (nobody but the participants). Everyone else who may see the slot sees `Busy`. \
             `null`: the default (unchanged in a patch).",
        ))
        .build()
}

const PRIVACY: [&str; 3] = ["full", "freebusy", "private"];

/// An appointment's privacy, on output.
pub fn privacy() -> Object {
    one_of(string(), &PRIVACY, "`full`, `freebusy` or `private`.")
}

/// An appointment's status.
pub fn appointment_status() -> Object {
    one_of(
        string(),
        &["confirmed", "tentative", "cancelled"],
        "`confirmed`, `tentative` (group appointments waiting for answers) or `cancelled`.",
    )
}

/// A participant's answer.
pub fn participant_status() -> Object {
    one_of(
        string(),
        &["pending", "accepted", "declined", "auto"],
        "`pending`, `accepted`, `declined`, or `auto` (the organiser).",
    )
}

/// A group's type.
pub fn group_type() -> Object {
    one_of(
        string(),
        &["hierarchical", "non_hierarchical"],
        "`hierarchical` (ranks) or `non_hierarchical` (every rank is 0; the creator manages members).",
    )
}

/// A membership invitation's state.
pub fn invitation_status() -> Object {
    one_of(
        string(),
        &["pending", "joined", "declined", "withdrawn"],
        "`pending`, `joined`, `declined` or `withdrawn`.",
    )
}

/// A stored username (canonical form).
pub fn stored_username() -> Object {
    string()
        .pattern(Some("^[a-z0-9_.-]{3,32}$"))
        .description(Some("Login name (lower case)."))
        .build()
}

/// `include` of an agenda listing: `pending`, `declined`, comma separated; empty items and
/// whitespace around items are ignored.
pub fn include() -> Object {
    let ws = ws();
    let item = format!("{ws}*(?:pending|declined)?{ws}*");
    string()
        .pattern(Some(format!("^{item}(?:,{item})*$")))
        .description(Some(
            "Also list appointments the caller has not answered (`pending`) or declined \
             (`declined`), comma separated.",
        ))
        .build()
}

/// A page size.
pub fn limit() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_PAGE))
        .description(Some(format!("Page size, 1–{MAX_PAGE}.")))
        .build()
}

/// An agenda cursor as [`agenda_shared::query::AgendaCursor::encode`] writes it.
pub const AGENDA_CURSOR: &str = "^[0-9]{1,15}\\.[0-9a-f]{32}$";
/// A notification cursor as `notifications::encode_cursor` writes it.
pub const NOTIFICATION_CURSOR: &str = "^[0-9]{1,19}\\.[0-9a-f]{32}$";

/// `cursor` of the agenda.
pub fn agenda_cursor() -> Object {
    string()
        .pattern(Some(AGENDA_CURSOR))
        .description(Some("Continue a listing: the `next_cursor` of the previous page."))
        .build()
}

/// `next_cursor` of an agenda page.
pub fn agenda_next_cursor() -> Object {
    string_or_null()
        .pattern(Some(AGENDA_CURSOR))
        .description(Some("Pass as `cursor` for the next page; `null` on the last page."))
        .build()
}

/// `cursor` of the notifications.
pub fn notification_cursor() -> Object {
    string()
        .pattern(Some(NOTIFICATION_CURSOR))
        .description(Some(
            "Continue a listing: the `next_cursor` of the previous page (older notifications).",
        ))
        .build()
}

/// `next_cursor` of a notification page.
pub fn notification_next_cursor() -> Object {
    string_or_null()
        .pattern(Some(NOTIFICATION_CURSOR))
        .description(Some(
            "Pass as `cursor` for the next (older) page; `null` on the last page.",
        ))
        .build()
}

/// An audit filter value.
pub fn audit_filter() -> Object {
    string()
        .pattern(Some(format!("^[^\\u0000-\\u001f\\u007f-\\u009f]{{0,{MAX_FILTER}}}$")))
        .description(Some(format!(
            "At most {MAX_FILTER} characters, no control characters; empty means no filter."
        )))
        .build()
}

/// A URL, absolute or relative.
pub fn uri_reference() -> Object {
    string()
        .format(Some(SchemaFormat::Custom("uri-reference".into())))
        .description(Some(
            "Absolute URL (from the request's `Host`; just the path when `Host` is missing or odd), \
             for calendar apps.",
        ))
        .build()
}

/// A revision number (`X-Agenda-Min-Revision`, `X-Agenda-Revision`, `after`).
pub fn revision() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .maximum(Some(MAX_REVISION))
        .build()
}

/// The largest revision a client may name: revisions are SQLite integers (`i64`), so
/// anything above `i64::MAX` is refused rather than read as "the far future".
pub const MAX_REVISION: u64 = i64::MAX as u64;

/// A client-supplied revision, or why it is not one.
pub fn parse_revision(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().filter(|r| *r <= MAX_REVISION)
}

/// An `Idempotency-Key`.
pub fn idempotency_key() -> Object {
    string()
        .pattern(Some("^[!-~]{1,200}$"))
        .min_length(Some(1))
        .max_length(Some(200))
        .description(Some(
            "1–200 visible ASCII characters, scoped to the caller. Reusing a key with the same \
             request returns the recorded answer (same status and entity); with a different \
             request, 422 `idempotency_mismatch`.",
        ))
        .build()
}

/// `If-Match`: a version as `ETag` writes it, bare, or `*`.
pub fn if_match() -> Object {
    string()
        .pattern(Some(IF_MATCH))
        .description(Some(
            "The version the change is based on (from `version` or `ETag`): `3`, `\"3\"` or \
             `W/\"3\"`; `*` or absent: any version. 412 `precondition_failed` when stale.",
        ))
        .build()
}

/// What `If-Match` accepts.
pub const IF_MATCH: &str = "^(\\*|[0-9]{1,19}|\"[0-9]{1,19}\"|W/\"[0-9]{1,19}\")$";

/// The rank a hierarchical group's creator takes.
pub fn creator_rank() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(u32::MAX))
        .description(Some(format!(
            "The creator's rank in a hierarchical group: 1–{MAX_RANK} (default 100). Ignored in a \
             non-hierarchical group, where every rank is 0."
        )))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cores_bound_the_trimmed_length() {
        assert_eq!(text_core(1), VISIBLE);
        assert!(text_core(validate::MAX_TITLE).contains("{0,198}"));
    }

    #[test]
    fn the_whitespace_class_is_rusts() {
        // The class must be exactly what `str::trim` strips; the two that differ from
        // ECMA-262's `\s` matter: U+0085 is in, U+FEFF is out.
        assert!('\u{85}'.is_whitespace() && WS_CHARS.contains(r"\u0085"));
        assert!(!'\u{feff}'.is_whitespace() && !WS_CHARS.contains("feff"));
        let count = (0..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .count();
        assert_eq!(count, 25, "char::is_whitespace changed: update WS_CHARS");
    }
}
