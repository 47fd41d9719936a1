//! gRPC `agenda.v1.Store`: decode, call [`StoreNode`], encode.

use std::pin::Pin;

use agenda_shared::proto::store_server::Store;
use agenda_shared::proto::{
    Consistency, ExecuteReply, ExecuteRequest, QueryReply, QueryRequest, ReadIndexReply, ReadIndexRequest, StatusReply,
    StatusRequest, WatchEvent, WatchRequest, watch_event,
};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::StoreError;
use crate::node::{ReadConsistency, StoreNode, WatchItem};

/// gRPC `agenda.v1.Store` service.
pub(crate) struct StoreService {
    pub(crate) node: StoreNode,
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(data).map_err(|e| StoreError::BadRequest(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(value).map_err(|e| Status::internal(format!("encode: {e}")))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Store for StoreService {
    async fn execute(&self, request: Request<ExecuteRequest>) -> Result<Response<ExecuteReply>, Status> {
        let msg = request.into_inner();
        let req = decode("request", &msg.request)?;
        let result = self.node.execute(req, msg.forwarded).await?;
        Ok(Response::new(ExecuteReply {
            revision: result.revision,
            outcome: encode(&result.outcome)?,
            replayed: result.replayed,
        }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        let msg = request.into_inner();
        let query = decode("query", &msg.query)?;
        let consistency = match Consistency::try_from(msg.consistency) {
            Ok(Consistency::Linearizable) => ReadConsistency::Linearizable,
            Ok(Consistency::Local) => ReadConsistency::Local,
            Ok(Consistency::MinRevision) => ReadConsistency::MinRevision(msg.min_revision),
            Err(_) => return Err(StoreError::BadRequest("unknown consistency".into()).into()),
        };
        let (revision, outcome) = self.node.query(query, consistency, msg.forwarded).await?;
        Ok(Response::new(QueryReply {
            revision,
            result: encode(&outcome)?,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let msg = request.into_inner();
        let user = if msg.user_id.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(&msg.user_id).map_err(|_| StoreError::BadRequest("user_id is not a UUID".into()))?)
        };
        let rx = self.node.watch(msg.after_revision, user);
        let stream = ReceiverStream::new(rx).map(|item| match item {
            Ok(WatchItem::Notification(n)) => Ok(WatchEvent {
                event: Some(watch_event::Event::Notification(encode(&n)?)),
            }),
            Ok(WatchItem::CaughtUp(rev)) => Ok(WatchEvent {
                event: Some(watch_event::Event::CaughtUp(rev)),
            }),
            Err(e) => Err(Status::from(e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        Ok(Response::new(StatusReply {
            status: encode(&self.node.status())?,
        }))
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexReply>, Status> {
        let index = self.node.read_index(true).await?;
        Ok(Response::new(ReadIndexReply { index }))
    }
}
