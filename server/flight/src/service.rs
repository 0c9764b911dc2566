//! A thin `FlightService` over [`FlightSql`] that authenticates every call,
//! answers `Handshake`, `GetSchema`, `PollFlightInfo` (see
//! [`crate::polls`]), the cancel actions
//! (see [`crate::cancel`]) and the session actions (see
//! [`crate::sessions`]), runs every call in its session's settings, and
//! routes CSV uploads.
//!
//! arrow-rs wires `FlightSqlService` into `FlightService` with those two
//! fixed to unimplemented; ADBC's `execute_schema` needs `GetSchema`. Its
//! DoPut routing accepts only protobuf commands, so DoPut goes to
//! [`FlightSql::put`] instead. Every other call is delegated unchanged.

use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionCreatePreparedSubstraitPlanRequest,
    Any, Command, ProstMessageExt,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, Criteria, Empty, FlightData,
    FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo, SchemaAsIpc,
    SchemaResult, Ticket,
};
use futures::StreamExt;
use prost::Message;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use super::FlightSql;
use super::access::caller;
use super::cancel::{Running, RunningQuery, cancelled_status};
use super::polls::{POLL_WAIT, Polls, job_of};
use super::put::header_options;
use super::query_slots::{Admission, timed_out};
use super::result_pump::pumped;
use super::sessions::{
    CLOSED, CloseSessionResult, InSession, Sessions, SetSessionOptionsRequest, expire_cookie,
    set_cookie,
};
use super::status::{IntoStatus, ToStatus, code_name};
use super::upload_watch::UploadWatch;
use crate::Limits;
use lakehouse_core::auth::{Authenticator, Identity};
use lakehouse_core::catalog::on_behalf;
use lakehouse_core::metrics::{QueryGuard, metrics};
use lakehouse_engine::error::Error;
use lakehouse_engine::query::session::with_settings;
use lakehouse_serving::requests::RequestPermit;

type Inner = FlightSql;

/// The cancel actions, by type.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";
const CANCEL_QUERY: &str = "CancelQuery";
/// The session actions, by type.
const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
const CLOSE_SESSION: &str = "CloseSession";
/// Preparing a Substrait plan, answered here: arrow-flight 58's Flight SQL
/// dispatch runs `do_action_create_prepared_substrait_plan` but drops its
/// result, so a client would get an empty stream instead of the handle.
const CREATE_PREPARED_SUBSTRAIT_PLAN: &str = "CreatePreparedSubstraitPlan";
/// `ActionCancelQueryResult.CancelResult.CANCEL_RESULT_CANCELLED` (arrow-rs
/// does not export the enum).
const CANCEL_RESULT_CANCELLED: i32 = 1;

/// A statement's time limit: the server's, or its session's.
#[derive(Debug, Clone, Copy)]
struct Limit {
    duration: Duration,
    session: bool,
}

impl Limit {
    /// The error of a statement stopped at the limit, naming the setting.
    fn refusal(self) -> Status {
        if self.session {
            Error::ResourceExhausted(format!(
                "the query ran longer than the session's query_timeout of {} s and was stopped",
                self.duration.as_secs_f64()
            ))
            .to_status()
        } else {
            timed_out(self.duration)
        }
    }
}

/// The service registered with tonic.
#[derive(Debug, Clone)]
pub struct LakehouseFlightService {
    inner: Arc<FlightSql>,
    /// `None` when authentication is off: every call is anonymous admin.
    auth: Option<Arc<Authenticator>>,
    /// Request permits, and where statements wait their turn to run and
    /// for how long they may (shared with the other protocols).
    admission: Admission,
    result_write_timeout: Duration,
    /// The statements running, for cancels from other connections.
    running: Running,
    sessions: Sessions,
    /// Statements submitted with PollFlightInfo.
    polls: Polls,
}

impl LakehouseFlightService {
    pub fn new(inner: Arc<FlightSql>, auth: Option<Arc<Authenticator>>, limits: &Limits) -> Self {
        let sessions = Sessions::new(inner.catalog().clone(), inner.admission().timeout());
        Self {
            auth,
            admission: inner.admission().clone(),
            inner,
            result_write_timeout: limits.result_write_timeout,
            running: Running::default(),
            sessions,
            polls: Polls::default(),
        }
    }

    /// A permit to serve one more request, or `ResourceExhausted` when the
    /// server already serves its limit.
    fn permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.admission.serving().server_permit().into_status()
    }

    /// Runs a planning call (which may also run a statement that writes)
    /// within the query timeout.
    async fn within_timeout<T>(
        &self,
        limit: Limit,
        call: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        tokio::time::timeout(limit.duration, call)
            .await
            .unwrap_or_else(|_| Err(limit.refusal()))
    }

    /// The session the call belongs to (its settings and query timeout);
    /// the defaults without one.
    fn session<T>(&self, request: &Request<T>) -> InSession {
        match caller(request) {
            Ok(identity) => self.sessions.of(request.metadata(), &identity),
            Err(_) => InSession::default(),
        }
    }

    /// The query timeout of a call in `session`.
    fn timeout_in(&self, session: &InSession) -> Limit {
        match session.query_timeout {
            Some(duration) => Limit {
                duration,
                session: true,
            },
            None => Limit {
                duration: self.admission.timeout(),
                session: false,
            },
        }
    }

    /// Attaches the caller's identity to `request` (the one the
    /// [`crate::Gate`] found, or without a gate in front, from its
    /// credentials) and takes its permits: one of the server's and, when
    /// authentication is on, one of the caller's own.
    async fn admit<T>(
        &self,
        mut request: Request<T>,
    ) -> Result<(Request<T>, RequestPermit), Status> {
        let identity = match request.extensions().get::<Identity>() {
            Some(identity) => identity.clone(),
            None => {
                let identity = self.identify(request.metadata()).await?;
                request.extensions_mut().insert(identity.clone());
                identity
            }
        };
        let permit = self
            .admission
            .serving()
            .admit(&identity.name)
            .into_status()?;
        Ok((request, permit))
    }

    /// `CancelFlightInfo` (a `CancelFlightInfoRequest`) or Flight SQL's
    /// older `CancelQuery` (an `ActionCancelQueryRequest` in an `Any`).
    fn cancel(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Inner as FlightService>::DoActionStream>, Status> {
        let identity = caller(&request).into_status()?;
        let action = request.into_inner();
        let refused = |e: prost::DecodeError| {
            Status::invalid_argument(format!("the {} body does not decode: {e}", action.r#type))
        };
        let body = if action.r#type == CANCEL_FLIGHT_INFO {
            let request = CancelFlightInfoRequest::decode(action.body.clone()).map_err(refused)?;
            let info = request.info.unwrap_or_default();
            let status = self.running.cancel(&info, &identity)?;
            CancelFlightInfoResult::new(status).encode_to_vec()
        } else {
            let any = Any::decode(action.body.clone()).map_err(refused)?;
            let request: ActionCancelQueryRequest = any
                .unpack()
                .map_err(|e| Status::invalid_argument(e.to_string()))?
                .ok_or_else(|| {
                    Status::invalid_argument(
                        "the CancelQuery body is not an ActionCancelQueryRequest",
                    )
                })?;
            let info = FlightInfo::decode(request.info).map_err(refused)?;
            self.running.cancel(&info, &identity)?;
            Any::pack(&ActionCancelQueryResult {
                result: CANCEL_RESULT_CANCELLED,
            })
            .map_err(|e| Status::internal(e.to_string()))?
            .encode_to_vec()
        };
        let result = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(futures::stream::once(async {
            Ok(result)
        }))))
    }

    /// `CreatePreparedSubstraitPlan`, answered with the prepared
    /// statement's handle and schemas.
    async fn prepare_substrait(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Inner as FlightService>::DoActionStream>, Status> {
        let command = Any::decode(request.get_ref().body.clone())
            .ok()
            .and_then(|any| {
                any.unpack::<ActionCreatePreparedSubstraitPlanRequest>()
                    .ok()
                    .flatten()
            })
            .ok_or_else(|| {
                Status::invalid_argument(
                    "the CreatePreparedSubstraitPlan body is not an \
                     ActionCreatePreparedSubstraitPlanRequest",
                )
            })?;
        let prepared = self
            .inner
            .do_action_create_prepared_substrait_plan(command, request)
            .await?;
        let result = arrow_flight::Result {
            body: prepared.as_any().encode_to_vec().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::once(async {
            Ok(result)
        }))))
    }

    /// `SetSessionOptions` (answering a `Set-Cookie` with a new session's
    /// id), `GetSessionOptions` and `CloseSession`.
    fn session_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Inner as FlightService>::DoActionStream>, Status> {
        let identity = caller(&request).into_status()?;
        let metadata = request.metadata().clone();
        let action = request.into_inner();
        let mut cookie = None;
        let body = match action.r#type.as_str() {
            SET_SESSION_OPTIONS => {
                let options =
                    SetSessionOptionsRequest::decode(action.body.clone()).map_err(|e| {
                        Status::invalid_argument(format!(
                            "the SetSessionOptions body does not decode: {e}"
                        ))
                    })?;
                let (result, made) = self.sessions.set(&metadata, &identity, options);
                cookie = made.map(|id| set_cookie(&id));
                result.encode_to_vec()
            }
            GET_SESSION_OPTIONS => self.sessions.get(&metadata, &identity)?.encode_to_vec(),
            _ => {
                self.sessions.close(&metadata, &identity)?;
                cookie = Some(expire_cookie());
                CloseSessionResult { status: CLOSED }.encode_to_vec()
            }
        };
        let result = arrow_flight::Result { body: body.into() };
        let mut response: Response<<Inner as FlightService>::DoActionStream> =
            Response::new(Box::pin(futures::stream::once(async { Ok(result) })));
        if let Some(cookie) = cookie {
            let value = MetadataValue::try_from(cookie).map_err(|e| {
                Status::internal(format!("a session cookie that is not a header value: {e}"))
            })?;
            response.metadata_mut().insert("set-cookie", value);
        }
        Ok(response)
    }

    async fn identify(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        match &self.auth {
            None => Ok(Identity::anonymous()),
            Some(auth) => Ok(auth
                .authenticate(authorization(metadata))
                .await
                .into_status()?),
        }
    }
}

/// Decodes a Flight SQL command, refusing bytes that are not a protobuf
/// `Any` with a message that says what was expected, before arrow-flight's
/// terse decode error would.
fn decode_command(bytes: &[u8], what: &str) -> Result<Command, Status> {
    let any = Any::decode(bytes)
        .map_err(|e| Error::invalid(format!("{what} (a protobuf Any): {e}")))
        .into_status()?;
    // A known command whose body does not decode: arrow-flight would call
    // that an internal error.
    Command::try_from(any).map_err(|e| {
        Error::invalid(format!("{what}: its command cannot be decoded: {e}")).to_status()
    })
}

/// Whether a DoGet ticket runs a statement (and so takes a query slot)
/// rather than answering a catalog question.
fn runs_statement(ticket: &Command) -> bool {
    matches!(
        ticket,
        Command::TicketStatementQuery(_) | Command::CommandPreparedStatementQuery(_)
    )
}

/// The raw value of a call's `authorization` header, if it has one.
fn authorization(metadata: &MetadataMap) -> Option<&[u8]> {
    metadata.get("authorization").map(|value| value.as_bytes())
}

/// Counts a finished call of `rpc` by its status code.
fn observe<T>(rpc: &'static str, result: Result<T, Status>) -> Result<T, Status> {
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    metrics().request(rpc, code_name(code));
    result
}

/// The request permit and, for a statement, its registration with its
/// query slot: held until the result stream ends.
type Held = (RequestPermit, Option<RunningQuery>);

/// A DoGet result stream that counts the bytes it sends, the query while it
/// runs, and the call's status when it ends (or `Cancelled` when the client
/// drops it first).
fn observe_results(
    stream: <Inner as FlightService>::DoGetStream,
    held: Held,
    deadline: tokio::time::Instant,
    timeout: Limit,
) -> <Inner as FlightService>::DoGetStream {
    struct Observed {
        stream: <Inner as FlightService>::DoGetStream,
        _query: QueryGuard,
        _held: Held,
        deadline: tokio::time::Instant,
        timeout: Limit,
        finished: bool,
    }
    impl Observed {
        fn finish(&mut self, code: Code) {
            metrics().request("DoGet", code_name(code));
            self.finished = true;
        }
    }
    impl Drop for Observed {
        fn drop(&mut self) {
            if !self.finished {
                metrics().request("DoGet", code_name(Code::Cancelled));
            }
        }
    }
    let observed = Observed {
        stream,
        _query: metrics().query_started(),
        _held: held,
        deadline,
        timeout,
        finished: false,
    };
    Box::pin(futures::stream::unfold(
        observed,
        |mut observed| async move {
            if observed.finished {
                return None;
            }
            let next = {
                let query = observed._held.1.as_ref();
                let cancelled = async {
                    match query {
                        Some(query) => query.cancelled().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = cancelled => None,
                    next = tokio::time::timeout_at(observed.deadline, observed.stream.next()) => Some(next),
                }
            };
            let Some(next) = next else {
                // Stop the query now; the slot went back with the cancel.
                observed.stream = Box::pin(futures::stream::empty());
                let status = cancelled_status();
                observed.finish(status.code());
                return Some((Err(status), observed));
            };
            let Ok(next) = next else {
                let status = observed.timeout.refusal();
                observed.finish(status.code());
                return Some((Err(status), observed));
            };
            match next {
                Some(Ok(data)) => {
                    metrics().bytes_out((data.data_header.len() + data.data_body.len()) as u64);
                    Some((Ok(data), observed))
                }
                Some(Err(status)) => {
                    observed.finish(status.code());
                    Some((Err(status), observed))
                }
                None => {
                    observed.finish(Code::Ok);
                    None
                }
            }
        },
    ))
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

    /// With authentication on: checks the Basic credentials (or a bearer
    /// token) in the request headers and answers with a fresh signed token
    /// in the `authorization` header and in the payload.
    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        observe(
            "Handshake",
            async {
                let _permit = self.permit()?;
                let Some(auth) = &self.auth else {
                    return FlightService::handshake(self.inner.as_ref(), request).await;
                };
                let identity = match request.extensions().get::<Identity>() {
                    Some(checked) => checked.clone(),
                    None => auth
                        .authenticate(authorization(request.metadata()))
                        .await
                        .into_status()?,
                };
                let token = auth.issue_token(&identity);
                tracing::info!(user = %identity.name, role = %identity.role, "logged in");
                let header = MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|e| Error::internal(format!("token is not a header value: {e}")))
                    .into_status()?;
                let answer = HandshakeResponse {
                    protocol_version: 0,
                    payload: token.into_bytes().into(),
                };
                let mut response: Response<Self::HandshakeStream> =
                    Response::new(Box::pin(futures::stream::once(async { Ok(answer) })));
                response.metadata_mut().insert("authorization", header);
                Ok(response)
            }
            .await,
        )
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        observe(
            "ListFlights",
            async {
                let (request, _permits) = self.admit(request).await?;
                FlightService::list_flights(self.inner.as_ref(), request).await
            }
            .await,
        )
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        observe(
            "GetFlightInfo",
            async {
                let (request, _permits) = self.admit(request).await?;
                decode_command(
                    &request.get_ref().cmd,
                    "the descriptor is not a Flight SQL command",
                )?;
                // Statements also take a slot, inside (`FlightSql`).
                let session = self.session(&request);
                self.within_timeout(
                    self.timeout_in(&session),
                    with_settings(
                        session.settings,
                        FlightService::get_flight_info(self.inner.as_ref(), request),
                    ),
                )
                .await
            }
            .await,
        )
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        observe(
            "PollFlightInfo",
            async {
                let (request, permits) = self.admit(request).await?;
                let identity = caller(&request).into_status()?;
                let id = match job_of(request.get_ref()) {
                    Some(id) => id,
                    None => {
                        decode_command(
                            &request.get_ref().cmd,
                            "the descriptor is not a Flight SQL command",
                        )?;
                        let session = self.session(&request);
                        let timeout = self.timeout_in(&session);
                        let descriptor = request.get_ref().clone();
                        let inner = self.inner.clone();
                        // The statement holds its caller's request permits
                        // while it runs, as a call would: a user's polled
                        // statements count against the same limits.
                        let work = on_behalf(with_settings(session.settings, async move {
                            let _held = permits;
                            tokio::time::timeout(
                                timeout.duration,
                                FlightService::get_flight_info(inner.as_ref(), request),
                            )
                            .await
                            .unwrap_or_else(|_| Err(timeout.refusal()))
                            .map(Response::into_inner)
                        }));
                        self.polls.start(&identity, descriptor, work)?
                    }
                };
                Ok(Response::new(
                    self.polls.poll(&id, &identity, POLL_WAIT).await?,
                ))
            }
            .await,
        )
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        observe(
            "GetSchema",
            async {
                let (request, _permits) = self.admit(request).await?;
                let session = self.session(&request);
                let schema = self
                    .admission
                    .bounded(with_settings(session.settings, async {
                        self.inner.schema_for(request.get_ref()).await.into_status()
                    }))
                    .await?;
                let result: SchemaResult = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
                    .try_into()
                    .map_err(Error::from)
                    .into_status()?;
                Ok(Response::new(result))
            }
            .await,
        )
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let started = tokio::time::Instant::now();
        let mut timeout = Limit {
            duration: self.admission.timeout(),
            session: false,
        };
        let mut deadline = started + timeout.duration;
        let result = async {
            let (request, permit) = self.admit(request).await?;
            let session = self.session(&request);
            timeout = self.timeout_in(&session);
            deadline = started + timeout.duration;
            let ticket = decode_command(
                &request.get_ref().ticket,
                "the ticket is not a Flight SQL ticket",
            )?;
            let query = if runs_statement(&ticket) {
                let identity = caller(&request).into_status()?;
                let query = self
                    .running
                    .start(request.get_ref().ticket.clone(), &identity.name)?;
                let slot = tokio::select! {
                    slot = self.admission.acquire(deadline) => slot?,
                    () = query.cancelled() => return Err(cancelled_status()),
                };
                query.hold(slot);
                Some(query)
            } else {
                None
            };
            let response = tokio::time::timeout_at(
                deadline,
                with_settings(
                    session.settings,
                    FlightService::do_get(self.inner.as_ref(), request),
                ),
            )
            .await
            .unwrap_or_else(|_| Err(timeout.refusal()))?;
            Ok((response, (permit, query)))
        }
        .await;
        match result {
            Ok((response, held)) => Ok(response.map(|stream| {
                pumped(
                    observe_results(stream, held, deadline, timeout),
                    self.result_write_timeout,
                )
            })),
            Err(status) => observe("DoGet", Err(status)),
        }
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        observe(
            "DoPut",
            async {
                let (request, _permits) = self.admit(request).await?;
                let watch = request.extensions().get::<UploadWatch>().cloned();
                let identity = caller(&request).into_status()?;
                let options = header_options(request.metadata());
                let session = self.session(&request);
                with_settings(
                    session.settings,
                    self.inner
                        .put(request.into_inner(), watch, options, identity),
                )
                .await
            }
            .await,
        )
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        observe(
            "DoAction",
            async {
                let (request, _permits) = self.admit(request).await?;
                match request.get_ref().r#type.as_str() {
                    CANCEL_FLIGHT_INFO | CANCEL_QUERY => self.cancel(request),
                    SET_SESSION_OPTIONS | GET_SESSION_OPTIONS | CLOSE_SESSION => {
                        self.session_action(request)
                    }
                    CREATE_PREPARED_SUBSTRAIT_PLAN => {
                        let session = self.session(&request);
                        with_settings(session.settings, self.prepare_substrait(request)).await
                    }
                    _ => {
                        let session = self.session(&request);
                        with_settings(
                            session.settings,
                            FlightService::do_action(self.inner.as_ref(), request),
                        )
                        .await
                    }
                }
            }
            .await,
        )
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        observe(
            "ListActions",
            async {
                let (request, _permits) = self.admit(request).await?;
                FlightService::list_actions(self.inner.as_ref(), request).await
            }
            .await,
        )
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        observe(
            "DoExchange",
            async {
                let (request, _permits) = self.admit(request).await?;
                FlightService::do_exchange(self.inner.as_ref(), request).await
            }
            .await,
        )
    }
}
