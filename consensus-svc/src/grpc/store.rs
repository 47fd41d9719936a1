//! gRPC `agenda.v1.Store`: decode (with the shared codec), call [`StoreNode`], encode.

use std::pin::Pin;

use agenda_shared::command::MAX_COMMAND_BYTES;
use agenda_shared::proto::store_server::Store;
use agenda_shared::proto::{
    ExecuteReply, ExecuteRequest, QueryReply, QueryRequest, ReadIndexReply, ReadIndexRequest, StatusReply,
    StatusRequest, WatchEvent, WatchRequest, watch_event,
};
use agenda_shared::rpc::store::ReadConsistency;
use agenda_shared::rpc::store::codec::{self, CodecError};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::StoreError;
use crate::node::{StoreNode, WatchItem};

/// gRPC `agenda.v1.Store` service.
pub(crate) struct StoreService {
    pub(crate) node: StoreNode,
}

/// A request document that cannot be decoded is the caller's fault.
fn bad(e: CodecError) -> StoreError {
    StoreError::BadRequest(e.to_string())
}

/// An answer that cannot be encoded is ours.
fn unencodable(e: CodecError) -> Status {
    tracing::error!(error = %e, "answer could not be encoded");
    Status::internal("answer could not be encoded")
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Store for StoreService {
    async fn execute(&self, request: Request<ExecuteRequest>) -> Result<Response<ExecuteReply>, Status> {
        self.node.stall_while_frozen().await;
        let msg = request.into_inner();
        // Cheaper than decoding first: the document as sent is already too large. (The
        // node checks the request again as the log would hold it.)
        if msg.request.len() > MAX_COMMAND_BYTES {
            return Err(StoreError::CommandTooLarge {
                bytes: msg.request.len(),
            }
            .into());
        }
        let req = codec::decode_request(&msg.request).map_err(bad)?;
        let result = self.node.execute(req, msg.forwarded).await?;
        Ok(Response::new(codec::execute_reply(&result).map_err(unencodable)?))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        self.node.stall_while_frozen().await;
        let msg = request.into_inner();
        let query = codec::decode_query(&msg.query).map_err(bad)?;
        let consistency = ReadConsistency::from_wire(msg.consistency, msg.min_revision)
            .ok_or_else(|| StoreError::BadRequest("unknown consistency".into()))?;
        let principal = msg
            .principal
            .as_ref()
            .map(|p| {
                codec::principal_from_wire(p)
                    .ok_or_else(|| StoreError::BadRequest("principal.user_id is not a UUID".into()))
            })
            .transpose()?;
        let (revision, outcome) = self.node.query(query, principal, consistency, msg.forwarded).await?;
        Ok(Response::new(QueryReply {
            revision,
            result: codec::encode_query_outcome(&outcome).map_err(unencodable)?,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        self.node.stall_while_frozen().await;
        let msg = request.into_inner();
        let user = if msg.user_id.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(&msg.user_id).map_err(|_| StoreError::BadRequest("user_id is not a UUID".into()))?)
        };
        let after = msg.after_revision;
        let rx = self.node.watch(after, user);
        let stream = ReceiverStream::new(rx).map(move |item| {
            let event = match item {
                Ok(WatchItem::Notification(n)) => {
                    watch_event::Event::Notification(codec::encode_notification(&n).map_err(unencodable)?)
                }
                Ok(WatchItem::CaughtUp(rev)) => watch_event::Event::CaughtUp(rev),
                Ok(WatchItem::ResyncRequired) => watch_event::Event::ResyncRequired(after),
                Err(e) => return Err(Status::from(e)),
            };
            Ok(WatchEvent { event: Some(event) })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        self.node.stall_while_frozen().await;
        Ok(Response::new(StatusReply {
            status: codec::encode_status(&self.node.status()).map_err(unencodable)?,
        }))
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexReply>, Status> {
        self.node.stall_while_frozen().await;
        let index = self.node.read_index(true).await?;
        Ok(Response::new(ReadIndexReply { index }))
    }
}
