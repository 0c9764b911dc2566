//! A thin `FlightService` over [`FlightSql`] that also answers `GetSchema`
//! and `PollFlightInfo`, and routes CSV uploads.
//!
//! arrow-rs wires `FlightSqlService` into `FlightService` with those two
//! fixed to unimplemented; ADBC's `execute_schema` needs `GetSchema`. Its
//! DoPut routing accepts only protobuf commands, so DoPut goes to
//! [`FlightSql::put`] instead. Every other call is delegated unchanged.

use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::Any;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaAsIpc, SchemaResult, Ticket,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::FlightSql;
use super::put::header_options;
use super::upload_watch::UploadWatch;
use crate::error::Error;

type Inner = FlightSql;

/// The service registered with tonic.
#[derive(Debug, Clone)]
pub struct LakehouseFlightService {
    inner: Arc<FlightSql>,
}

impl LakehouseFlightService {
    pub fn new(inner: Arc<FlightSql>) -> Self {
        Self { inner }
    }
}

/// Refuses bytes that are not a protobuf `Any` with a message that says
/// what was expected, before arrow-flight's terse decode error would.
fn check_any(bytes: &[u8], what: &str) -> Result<(), Status> {
    Any::decode(bytes)
        .map(|_| ())
        .map_err(|e| Error::invalid(format!("{what} (a protobuf Any): {e}")).into())
}

#[tonic::async_trait]
impl FlightService for LakehouseFlightService {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(self.inner.as_ref(), request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(self.inner.as_ref(), request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        check_any(
            &request.get_ref().cmd,
            "the descriptor is not a Flight SQL command",
        )?;
        FlightService::get_flight_info(self.inner.as_ref(), request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let descriptor = request.get_ref().clone();
        let info = FlightService::get_flight_info(self.inner.as_ref(), request)
            .await?
            .into_inner();
        Ok(Response::new(PollInfo {
            info: Some(info),
            flight_descriptor: Some(descriptor),
            progress: Some(1.0),
            expiration_time: None,
        }))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let schema = self.inner.schema_for(request.get_ref()).await?;
        let result: SchemaResult = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(Error::from)?;
        Ok(Response::new(result))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        check_any(
            &request.get_ref().ticket,
            "the ticket is not a Flight SQL ticket",
        )?;
        FlightService::do_get(self.inner.as_ref(), request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let watch = request.extensions().get::<UploadWatch>().cloned();
        let options = header_options(request.metadata());
        self.inner.put(request.into_inner(), watch, options).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(self.inner.as_ref(), request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(self.inner.as_ref(), request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(self.inner.as_ref(), request).await
    }
}
