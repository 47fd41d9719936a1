//! The agenda rules (DESIGN §7) against one state machine, one log entry per command:
//! accounts and personal appointments, groups and their appointments, consent, privacy,
//! quotas, retention; batch entries (`batch`).

mod batch;
mod groups;
mod personal;
