//! Versioned, additive migrations of the agenda database (`PRAGMA user_version`).
//! A migration never drops data; each runs in one transaction.

use rusqlite::Connection;

/// Migrations in order; index + 1 is the `user_version` after running it.
const MIGRATIONS: &[&str] = &[
    // 1: users, personal appointments, notifications, audit, idempotency.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE users (
         id TEXT PRIMARY KEY,
         username TEXT NOT NULL UNIQUE,
         email TEXT NOT NULL UNIQUE,
         display_name TEXT NOT NULL,
         password_hash TEXT NOT NULL,
         feed_token TEXT NOT NULL UNIQUE,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         password_changed_at INTEGER NOT NULL
     );
     CREATE TABLE appointments (
         id TEXT PRIMARY KEY,
         owner_id TEXT NOT NULL REFERENCES users(id),
         group_id TEXT,
         title TEXT NOT NULL,
         description TEXT NOT NULL,
         start_ms INTEGER NOT NULL,
         end_ms INTEGER NOT NULL,
         privacy TEXT NOT NULL,
         status TEXT NOT NULL,
         version INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     );
     CREATE INDEX appointments_group ON appointments(group_id);
     CREATE TABLE participants (
         appointment_id TEXT NOT NULL REFERENCES appointments(id) ON DELETE CASCADE,
         user_id TEXT NOT NULL REFERENCES users(id),
         status TEXT NOT NULL,
         conflict INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (appointment_id, user_id)
     );
     CREATE INDEX participants_user ON participants(user_id, status);
     CREATE TABLE notifications (
         id TEXT PRIMARY KEY,
         revision INTEGER NOT NULL,
         user_id TEXT NOT NULL,
         kind TEXT NOT NULL,
         payload TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         read INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX notifications_revision ON notifications(revision);
     CREATE INDEX notifications_user ON notifications(user_id, revision);
     CREATE TABLE audit (
         seq INTEGER PRIMARY KEY,
         revision INTEGER NOT NULL,
         at_ms INTEGER NOT NULL,
         component TEXT NOT NULL,
         action TEXT NOT NULL,
         actor TEXT,
         outcome TEXT NOT NULL,
         level TEXT NOT NULL,
         request_id TEXT NOT NULL,
         node TEXT NOT NULL
     );
     CREATE INDEX audit_request ON audit(request_id);
     CREATE TABLE idempotency (
         actor TEXT NOT NULL,
         request_id TEXT NOT NULL,
         request_hash TEXT NOT NULL,
         revision INTEGER NOT NULL,
         outcome TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         PRIMARY KEY (actor, request_id)
     );
     CREATE INDEX idempotency_created ON idempotency(created_at);",
    // 2: groups and their members.
    "CREATE TABLE groups (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         description TEXT NOT NULL,
         group_type TEXT NOT NULL,
         creator_id TEXT NOT NULL REFERENCES users(id),
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     );
     CREATE TABLE members (
         group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
         user_id TEXT NOT NULL REFERENCES users(id),
         rank INTEGER NOT NULL,
         joined_at INTEGER NOT NULL,
         PRIMARY KEY (group_id, user_id)
     );
     CREATE INDEX members_user ON members(user_id);
     CREATE INDEX appointments_start ON appointments(start_ms);",
    // 3: node events carry a detail; audit queries filter by component.
    "ALTER TABLE audit ADD COLUMN detail TEXT;
     CREATE INDEX audit_component ON audit(component, seq);",
    // 4: each participation carries its appointment's time, indexed per user, so "what
    // blocks this user's time" (every booking's conflict check, agendas, free/busy) reads
    // only the user's appointments near that time instead of all of them. End and status
    // are in the index too: rows that do not overlap are skipped without a table lookup.
    "ALTER TABLE participants ADD COLUMN start_ms INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE participants ADD COLUMN end_ms INTEGER NOT NULL DEFAULT 0;
     UPDATE participants SET
         start_ms = (SELECT a.start_ms FROM appointments a WHERE a.id = participants.appointment_id),
         end_ms = (SELECT a.end_ms FROM appointments a WHERE a.id = participants.appointment_id);
     CREATE INDEX participants_time ON participants(user_id, start_ms, end_ms, status);",
    // 5: membership by consent. Invitations are kept (answered or not) for 30 days of log
    // time: pending ones lapse then, and the answered ones still count towards the
    // per-inviter hourly cap. Notifications are pruned by age (retention), and quotas count
    // a user's upcoming appointments, so both get an index.
    "CREATE TABLE group_invitations (
         seq INTEGER PRIMARY KEY,
         group_id TEXT NOT NULL,
         user_id TEXT NOT NULL REFERENCES users(id),
         rank INTEGER NOT NULL,
         invited_by TEXT NOT NULL,
         status TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         answered_at INTEGER
     );
     CREATE UNIQUE INDEX group_invitations_pending ON group_invitations(group_id, user_id) WHERE status = 'pending';
     CREATE INDEX group_invitations_user ON group_invitations(user_id, status);
     CREATE INDEX group_invitations_inviter ON group_invitations(invited_by, created_at);
     CREATE INDEX group_invitations_created ON group_invitations(created_at);
     CREATE INDEX notifications_created ON notifications(created_at);
     CREATE INDEX appointments_owner ON appointments(owner_id, end_ms, status);",
];

/// Bring the database to the newest schema.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "state database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_4_copies_each_participation_s_time_from_its_appointment() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO users VALUES ('u', 'u', 'u@x', 'U', 'h', 'f', 0, 0, 0);
             INSERT INTO appointments VALUES ('a', 'u', NULL, 't', '', 100, 200, 'full', 'confirmed', 1, 0, 0);
             INSERT INTO participants (appointment_id, user_id, status, conflict) VALUES ('a', 'u', 'accepted', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let times: (i64, i64) = conn
            .query_row("SELECT start_ms, end_ms FROM participants", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(times, (100, 200));
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
