//! What utoipa's model cannot say, added to the rendered document in one place: the
//! response headers every answer carries (utoipa's `Header` has no `required`), the rules
//! that tie one body field to another (`oneOf`/`anyOf`/`if`, which its `Object` has no
//! fields for), and the links from an answer to the operations its ids feed (which
//! `#[utoipa::path]` cannot declare). Each entry names the schema or operation it refines;
//! a test checks that every name still exists, so a rename cannot silently drop one.

use serde_json::{Map, Value, json};

use super::rules::MAX_RANK;

/// Operations whose success answers come from the replicated state and so carry
/// `X-Agenda-Revision`: all of them but these.
const WITHOUT_REVISION: &[&str] = &[
    "healthz",
    "readyz",
    "metrics",
    "openapi_json",
    "cluster_status",
    "open_websocket",
];

/// Operations answering one appointment, with `ETag: "<version>"`.
const WITH_ETAG: &[&str] = &[
    "post_appointment",
    "get_appointment",
    "patch_appointment",
    "accept_invitation",
    "reject_invitation",
];

/// A link from an answer to an operation its ids feed.
struct Link {
    /// The operation answering.
    from: &'static str,
    /// The answer's status.
    status: &'static str,
    /// The link's name.
    name: &'static str,
    /// The operation it leads to.
    to: &'static str,
    /// Where that operation's parameters come from.
    parameters: &'static [(&'static str, &'static str)],
}

const fn link(
    (from, status): (&'static str, &'static str),
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
) -> Link {
    Link {
        from,
        status,
        name,
        to,
        parameters,
    }
}

const CREATED_ID: &[(&str, &str)] = &[("id", "$response.body#/id")];
const FIRST_APPOINTMENT: &[(&str, &str)] = &[("id", "$response.body#/appointments/0/id")];
const FIRST_INVITATION: &[(&str, &str)] = &[("id", "$response.body#/invitations/0/group_id")];
const FIRST_NOTIFICATION: &[(&str, &str)] = &[("id", "$response.body#/notifications/0/id")];
const INVITEE: &[(&str, &str)] = &[
    ("id", "$request.path.id"),
    ("user_id", "$response.body#/invitation/user_id"),
];

const LINKS: &[Link] = &[
    link(
        ("post_appointment", "201"),
        "GetAppointment",
        "get_appointment",
        CREATED_ID,
    ),
    link(
        ("post_appointment", "201"),
        "ChangeAppointment",
        "patch_appointment",
        CREATED_ID,
    ),
    link(
        ("post_appointment", "201"),
        "DeleteAppointment",
        "delete_appointment",
        CREATED_ID,
    ),
    link(("post_appointment", "201"), "MyStatus", "my_status", CREATED_ID),
    link(
        ("get_agenda", "200"),
        "AcceptFirst",
        "accept_invitation",
        FIRST_APPOINTMENT,
    ),
    link(
        ("get_agenda", "200"),
        "RejectFirst",
        "reject_invitation",
        FIRST_APPOINTMENT,
    ),
    link(("create_group", "201"), "GetGroup", "get_group", CREATED_ID),
    link(("create_group", "201"), "ChangeGroup", "update_group", CREATED_ID),
    link(("create_group", "201"), "DeleteGroup", "delete_group", CREATED_ID),
    link(("create_group", "201"), "Invite", "add_member", CREATED_ID),
    link(("create_group", "201"), "GroupAgenda", "group_agenda", CREATED_ID),
    link(("add_member", "202"), "Withdraw", "remove_member", INVITEE),
    link(("my_invitations", "200"), "JoinFirst", "join_group", FIRST_INVITATION),
    link(
        ("my_invitations", "200"),
        "DeclineFirst",
        "decline_group",
        FIRST_INVITATION,
    ),
    link(
        ("list_notifications", "200"),
        "ReadFirst",
        "mark_notification_read",
        FIRST_NOTIFICATION,
    ),
];

/// Body rules that tie fields together, by schema name.
fn body_rules() -> Vec<(&'static str, Value)> {
    vec![
        (
            "LoginInput",
            json!({ "oneOf": [given("login"), given("username"), given("email")] }),
        ),
        ("MemberInput", json!({ "oneOf": [given("user_id"), given("username")] })),
        (
            "ProfilePatch",
            json!({
                "anyOf": [given("username"), given("email"), given("display_name")],
                "allOf": [needs_password("username"), needs_password("email")],
            }),
        ),
        (
            "AppointmentPatch",
            json!({ "anyOf": [
                given("title"), given("description"), given("start_time"), given("end_time"), given("privacy"),
            ] }),
        ),
        ("GroupPatch", json!({ "anyOf": [given("name"), given("description")] })),
        (
            "GroupInput",
            json!({
                "if": { "properties": { "group_type": { "const": "hierarchical" } } },
                "then": { "properties": { "creator_rank": { "minimum": 1, "maximum": MAX_RANK } } },
            }),
        ),
    ]
}

/// `field` is present and not `null`.
fn given(field: &str) -> Value {
    json!({ "required": [field], "properties": { field: { "not": { "type": "null" } } } })
}

/// Changing `field` needs the current password. (Re-sending the current value changes
/// nothing and needs none; that exemption depends on stored state and is left out.)
fn needs_password(field: &str) -> Value {
    json!({
        "if": given(field),
        "then": { "required": ["current_password"], "properties": { "current_password": { "type": "string" } } },
    })
}

fn header(description: &str, schema: Value) -> Value {
    json!({ "description": description, "required": true, "schema": schema })
}

/// Response headers of one answer of operation `op`.
fn response_headers(op: &str, status: &str) -> Vec<(&'static str, Value)> {
    let mut out = vec![(
        "X-Request-ID",
        header(
            "The request's id: a sane client `X-Request-ID` is echoed, else a fresh UUIDv7.",
            json!({ "type": "string", "minLength": 1 }),
        ),
    )];
    let success = status.starts_with('2');
    if success && !WITHOUT_REVISION.contains(&op) {
        out.push((
            "X-Agenda-Revision",
            header(
                "The revision the write was applied at or the read was served at (pass it as \
                 `X-Agenda-Min-Revision` to read your writes on any slot).",
                json!({ "type": "integer", "minimum": 0 }),
            ),
        ));
    }
    if success && WITH_ETAG.contains(&op) {
        out.push((
            "ETag",
            header(
                "The appointment's version, quoted: `If-Match` takes it back.",
                json!({ "type": "string", "pattern": "^\"[0-9]+\"$" }),
            ),
        ));
    }
    match status {
        "401" => out.push((
            "WWW-Authenticate",
            header("`Bearer`.", json!({ "type": "string", "const": "Bearer" })),
        )),
        "429" | "503" => out.push((
            "Retry-After",
            header(
                "Seconds to wait before retrying (also `retry_after` in the body).",
                json!({ "type": "integer", "minimum": 1 }),
            ),
        )),
        _ => {}
    }
    out
}

/// The object under `key` in `map`, created empty when missing (`None` if it is something
/// else, which utoipa never writes).
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// The served document: utoipa's, refined.
pub(crate) fn refine(doc: &utoipa::openapi::OpenApi) -> Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(doc)?;
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, rule) in body_rules() {
            if let (Some(Value::Object(schema)), Value::Object(rule)) = (schemas.get_mut(name), rule) {
                schema.extend(rule);
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                let id = op.get("operationId").and_then(Value::as_str).unwrap_or("").to_owned();
                let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                    continue;
                };
                for (status, response) in responses.iter_mut() {
                    let Some(response) = response.as_object_mut() else {
                        continue;
                    };
                    if let Some(headers) = object_at(response, "headers") {
                        for (name, h) in response_headers(&id, status) {
                            headers.insert(name.to_owned(), h);
                        }
                    }
                    for link in LINKS.iter().filter(|l| l.from == id && l.status == status) {
                        let parameters: Map<String, Value> = link
                            .parameters
                            .iter()
                            .map(|(p, v)| ((*p).to_owned(), json!(v)))
                            .collect();
                        if let Some(links) = object_at(response, "links") {
                            links.insert(
                                link.name.to_owned(),
                                json!({ "operationId": link.to, "parameters": parameters }),
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_something_that_exists() {
        let doc = refine(&super::super::openapi_parts()).unwrap();
        for (name, _) in body_rules() {
            assert!(doc["components"]["schemas"][name].is_object(), "no schema {name}");
        }
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        for op in WITHOUT_REVISION.iter().chain(WITH_ETAG) {
            assert!(ids.contains(op), "no operation {op}");
        }
        for Link {
            from, status, name, to, ..
        } in LINKS
        {
            assert!(ids.contains(from) && ids.contains(to), "link {name}: no {from} or {to}");
            let linked = doc["paths"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|item| item.as_object().unwrap().values())
                .any(|op| op["operationId"] == *from && op["responses"][*status]["links"][*name].is_object());
            assert!(linked, "link {name} from {from} {status} missing");
        }
    }

    #[test]
    fn every_answer_documents_its_headers() {
        let doc = refine(&super::super::openapi_parts()).unwrap();
        let get = &doc["paths"]["/api/appointments/{id}"]["get"]["responses"];
        assert_eq!(get["200"]["headers"]["ETag"]["required"], true);
        assert_eq!(get["200"]["headers"]["X-Agenda-Revision"]["required"], true);
        assert_eq!(get["401"]["headers"]["WWW-Authenticate"]["required"], true);
        assert!(get["404"]["headers"]["X-Request-ID"].is_object());
        let health = &doc["paths"]["/healthz"]["get"]["responses"]["200"]["headers"];
        assert!(health["X-Agenda-Revision"].is_null());
    }
}
