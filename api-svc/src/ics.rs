//! iCalendar (RFC 5545) export of an agenda: one `VEVENT` per appointment, UTC times,
//! escaped text values and lines folded at 75 octets with CRLF endings.

use agenda_shared::model::{Appointment, AppointmentStatus, Privacy};
use time::OffsetDateTime;

/// Media type of the export.
pub const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";
/// Longest content line in octets, without the CRLF (RFC 5545 §3.1).
const FOLD_AT: usize = 75;

/// `YYYYMMDDTHHMMSSZ` of UTC milliseconds (§3.3.5, form #2).
fn utc(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| "19700101T000000Z".to_owned())
}

/// Escape a TEXT value (§3.3.11): backslash, semicolon, comma and newlines.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Append one content line, folded (§3.1): never split inside a UTF-8 character;
/// continuation lines start with a space, which counts toward their 75 octets.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if width + len > FOLD_AT {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

/// The calendar of `appointments`, named `name`, stamped `now_ms`.
pub fn calendar(name: &str, appointments: &[Appointment], now_ms: i64) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Agenda//Agenda API//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    for a in appointments {
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}@agenda", a.id));
        line(&mut out, &format!("DTSTAMP:{}", utc(now_ms)));
        line(&mut out, &format!("DTSTART:{}", utc(a.start_ms)));
        line(&mut out, &format!("DTEND:{}", utc(a.end_ms)));
        line(&mut out, &format!("CREATED:{}", utc(a.created_at_ms)));
        line(&mut out, &format!("LAST-MODIFIED:{}", utc(a.updated_at_ms)));
        line(&mut out, &format!("SEQUENCE:{}", a.version.saturating_sub(1)));
        line(&mut out, &format!("SUMMARY:{}", text(&a.title)));
        if !a.description.is_empty() {
            line(&mut out, &format!("DESCRIPTION:{}", text(&a.description)));
        }
        let status = match a.status {
            AppointmentStatus::Confirmed => "CONFIRMED",
            AppointmentStatus::Tentative => "TENTATIVE",
            AppointmentStatus::Cancelled => "CANCELLED",
        };
        line(&mut out, &format!("STATUS:{status}"));
        let class = match a.privacy {
            Privacy::Full => "PUBLIC",
            Privacy::Freebusy => "PRIVATE",
            Privacy::Private => "CONFIDENTIAL",
        };
        line(&mut out, &format!("CLASS:{class}"));
        line(&mut out, "TRANSP:OPAQUE");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use agenda_shared::model::{Participant, ParticipantStatus};
    use uuid::Uuid;

    use super::*;

    fn appointment(title: &str, description: &str) -> Appointment {
        let owner = Uuid::now_v7();
        Appointment {
            id: Uuid::now_v7(),
            owner_id: owner,
            group_id: None,
            title: title.into(),
            description: description.into(),
            start_ms: 1_900_000_000_000,
            end_ms: 1_900_000_360_000,
            privacy: Privacy::Full,
            status: AppointmentStatus::Confirmed,
            version: 2,
            masked: false,
            created_at_ms: 1_800_000_000_000,
            updated_at_ms: 1_800_000_000_000,
            participants: vec![Participant {
                user_id: owner,
                status: ParticipantStatus::Accepted,
                conflict: false,
            }],
        }
    }

    #[test]
    fn lines_are_folded_at_75_octets_without_splitting_characters() {
        let long = "é".repeat(100);
        let ics = calendar("x", &[appointment(&long, "")], 0);
        for l in ics.split("\r\n") {
            assert!(l.len() <= FOLD_AT, "{} octets: {l}", l.len());
        }
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("SUMMARY:{long}\r\n")));
    }

    #[test]
    fn text_is_escaped_and_times_are_utc() {
        let ics = calendar(
            "Alice; Bob",
            &[appointment("a,b;c\\d", "line1\nline2")],
            1_800_000_000_000,
        );
        assert!(ics.contains("X-WR-CALNAME:Alice\\; Bob\r\n"));
        assert!(ics.contains("SUMMARY:a\\,b\\;c\\\\d\r\n"));
        assert!(ics.contains("DESCRIPTION:line1\\nline2\r\n"));
        assert!(ics.contains("DTSTART:20300317T174640Z\r\n"));
        assert!(ics.contains("STATUS:CONFIRMED\r\n"));
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
    }
}
