//! openraft's storage conformance suite against the SQLite log store and state machine.

use consensus_svc::log_store::LogStore;
use consensus_svc::state::StateStore;
use consensus_svc::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct SqliteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateStore, TempDir> for SqliteBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateStore), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("open log store");
        let state = StateStore::open(dir.path()).expect("open state store");
        Ok((dir, log, state))
    }
}

#[test]
fn sqlite_store_passes_the_openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(SqliteBuilder)
}
