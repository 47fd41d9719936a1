//! The JSON of commands and queries is a storage format (the Raft log, the idempotency
//! table) and a wire format (other versions of the sidecars): it must not change by
//! accident. The fixtures were written by the code before commands and queries became
//! one struct each; every line must decode, and re-encode to the same bytes.

use agenda_shared::command::{Command, RULES_LEGACY, Request};
use agenda_shared::query::Query;

fn lines(file: &str) -> Vec<String> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_entry_written_before_decodes_and_re_encodes_to_the_same_bytes() {
    let entries = lines("requests.jsonl");
    assert_eq!(entries.len(), 20, "one entry per command");
    let mut actions = std::collections::BTreeSet::new();
    for line in entries {
        let req: Request = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        actions.insert(req.command.action());
        assert_eq!(serde_json::to_string(&req).expect("encode"), line);
    }
    assert_eq!(actions.len(), 20, "every command kind is covered: {actions:?}");
}

#[test]
fn an_entry_from_before_the_rules_field_decodes_with_the_legacy_rules() {
    let line = &lines("legacy_request.jsonl")[0];
    let req: Request = serde_json::from_str(line).expect("decodes");
    assert_eq!(req.rules, RULES_LEGACY);
    assert!(req.token_stamp.is_none() && req.limits.is_none());
    assert!(matches!(req.command, Command::AddMember(ref a) if a.rank == Some(3)));
}

#[test]
fn every_query_written_before_decodes_and_re_encodes_to_the_same_bytes() {
    let queries = lines("queries.jsonl");
    assert_eq!(queries.len(), 13, "one line per query");
    for line in queries {
        let q: Query = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(serde_json::to_string(&q).expect("encode"), line);
    }
}
