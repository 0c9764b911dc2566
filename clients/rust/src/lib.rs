//! Rust client for a lakehouse server, over Flight SQL.
//!
//! A thin layer on arrow-flight's `FlightSqlServiceClient` that does the
//! round trips a caller always needs (GetFlightInfo then DoGet on every
//! endpoint; bulk ingest with a mode) and keeps gRPC status codes visible in
//! its errors. Used by the CLI, the end-to-end tests and the benchmarks; it
//! depends on nothing of the server.

use std::collections::HashMap;

use std::sync::Arc;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::{FlightSqlServiceClient, PreparedStatement};
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use arrow_flight::{FlightDescriptor, FlightInfo, HandshakeRequest, PutResult};
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Option key of `CommandStatementIngest` carrying an idempotency key.
pub const IDEMPOTENCY_KEY_OPTION: &str = "lakehouse.idempotency_key";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Flight(#[from] FlightError),
    #[error("{0}")]
    Arrow(#[from] ArrowError),
    /// Reading the data to upload failed; the upload was abandoned and the
    /// server committed nothing.
    #[error("reading the upload failed: {0}")]
    Read(#[source] std::io::Error),
    #[error("the server's answer could not be read: {0}")]
    Answer(String),
}

impl ClientError {
    /// The gRPC status the server answered with, when the error is one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Flight(FlightError::Tonic(status)) => Some(status),
            _ => None,
        }
    }

    /// The gRPC code, when the error is a server status.
    pub fn code(&self) -> Option<tonic::Code> {
        self.status().map(tonic::Status::code)
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How a bulk ingest treats an existing or missing table (ADBC's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Fail if the table exists.
    Create,
    /// Fail if the table is missing.
    Append,
    /// Create the table, or replace its rows.
    Replace,
    /// Create the table, or append to it.
    CreateAppend,
}

impl IngestMode {
    fn options(self) -> TableDefinitionOptions {
        let (if_not_exist, if_exists) = match self {
            IngestMode::Create => (TableNotExistOption::Create, TableExistsOption::Fail),
            IngestMode::Append => (TableNotExistOption::Fail, TableExistsOption::Append),
            IngestMode::Replace => (TableNotExistOption::Create, TableExistsOption::Replace),
            IngestMode::CreateAppend => (TableNotExistOption::Create, TableExistsOption::Append),
        };
        TableDefinitionOptions {
            if_not_exist: if_not_exist.into(),
            if_exists: if_exists.into(),
        }
    }
}

/// One bulk ingest request.
#[derive(Debug, Clone)]
pub struct Ingest<'a> {
    pub table: &'a str,
    pub schema: Option<&'a str>,
    pub mode: IngestMode,
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Ingest<'a> {
    pub fn new(table: &'a str, mode: IngestMode) -> Self {
        Self {
            table,
            schema: None,
            mode,
            idempotency_key: None,
        }
    }
}

/// What a CSV upload committed, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CsvLoaded {
    /// `schema.table`.
    pub table: String,
    pub version: u64,
    pub rows: u64,
    /// CSV bytes the server received.
    pub bytes: u64,
    /// The idempotency key had been used before: nothing was added.
    #[serde(default)]
    pub deduplicated: bool,
}

/// How to prove who the client is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Logs in with `Handshake` (Basic) and sends the bearer token it
    /// returns on every later call.
    Password { user: String, password: String },
    /// Sends this bearer token (an API token) on every call.
    Token(String),
}

/// Credentials and TLS settings of a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub credentials: Option<Credentials>,
    /// PEM certificates to trust (the server's, or its CA): the connection
    /// uses TLS when set or when the address starts with `https://`.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key this client presents, for servers that
    /// verify clients.
    pub tls_client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// A connection to one server.
#[derive(Debug, Clone)]
pub struct Client {
    sql: FlightSqlServiceClient<Channel>,
}

impl Client {
    /// Connects to `address` (`host:port`, `http://host:port` or
    /// `https://host:port`) without credentials.
    pub async fn connect(address: &str) -> Result<Self> {
        Self::connect_with(address, &ConnectOptions::default()).await
    }

    /// Connects to `address` with credentials and TLS settings.
    pub async fn connect_with(address: &str, options: &ConnectOptions) -> Result<Self> {
        let tls = options.tls_ca_pem.is_some() || address.starts_with("https://");
        let url = match address.split_once("://") {
            Some(("grpc+tls", rest)) => format!("https://{rest}"),
            Some(("grpc" | "grpc+tcp", rest)) => format!("http://{rest}"),
            Some(_) => address.to_string(),
            None if tls => format!("https://{address}"),
            None => format!("http://{address}"),
        };
        let connect_error = |source| ClientError::Connect {
            address: address.to_string(),
            source,
        };
        let mut endpoint = Endpoint::from_shared(url)
            .map_err(connect_error)?
            .initial_stream_window_size(8 * 1024 * 1024)
            .initial_connection_window_size(32 * 1024 * 1024)
            // The server sends a result in frames of up to 1 MiB instead of
            // 16 KiB: a fifth less client CPU on a 1 GB result (a task
            // wake-up per frame).
            .max_frame_size(1024 * 1024);
        if tls {
            // ring, as the server uses; rustls cannot pick one itself when
            // another crate in the process links aws-lc-rs too.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut config = ClientTlsConfig::new();
            config = match &options.tls_ca_pem {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_enabled_roots(),
            };
            if let Some((cert, key)) = &options.tls_client_identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(config).map_err(connect_error)?;
        }
        let channel = endpoint.connect().await.map_err(connect_error)?;
        let mut client = Self {
            sql: FlightSqlServiceClient::new(channel),
        };
        match &options.credentials {
            None => {}
            Some(Credentials::Token(token)) => client.sql.set_token(token.clone()),
            Some(Credentials::Password { user, password }) => {
                client.login(user, password).await?;
            }
        }
        Ok(client)
    }

    /// `Handshake` with Basic credentials; keeps the bearer token the
    /// server answers with (if it has authentication on) for every later
    /// call.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut request = tonic::Request::new(futures::stream::iter(vec![HandshakeRequest {
            protocol_version: 0,
            payload: Bytes::new(),
        }]));
        let header = format!("Basic {basic}")
            .parse()
            .map_err(|_| ClientError::Answer("the user name cannot be sent in a header".into()))?;
        request.metadata_mut().insert("authorization", header);
        let response = self
            .sql
            .inner_mut()
            .handshake(request)
            .await
            .map_err(|status| FlightError::Tonic(Box::new(status)))?;
        // A server with authentication off answers without a token; calls
        // then go without one, as they would have anyway.
        let token = response
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if let Some(token) = token {
            self.sql.set_token(token.to_string());
        }
        Ok(())
    }

    /// The underlying Flight SQL client, for calls this type does not wrap.
    pub fn flight_sql(&mut self) -> &mut FlightSqlServiceClient<Channel> {
        &mut self.sql
    }

    /// Runs a query and collects every batch of every endpoint.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>> {
        let info = self.sql.execute(sql.to_string(), None).await?;
        self.fetch(info).await
    }

    /// Runs a query; returns the schema the server announced and the batches.
    pub async fn query_with_schema(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let info = self.sql.execute(sql.to_string(), None).await?;
        let schema = std::sync::Arc::new(info.clone().try_decode_schema()?);
        Ok((schema, self.fetch(info).await?))
    }

    /// Reads every endpoint of a `FlightInfo`, in order.
    pub async fn fetch(&mut self, info: FlightInfo) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self.sql.do_get(ticket).await?;
            batches.extend(stream.try_collect::<Vec<_>>().await?);
        }
        Ok(batches)
    }

    /// Runs a statement that writes; returns the rows it wrote.
    pub async fn update(&mut self, sql: &str) -> Result<i64> {
        Ok(self.sql.execute_update(sql.to_string(), None).await?)
    }

    /// Prepares a statement.
    pub async fn prepare(&mut self, sql: &str) -> Result<PreparedStatement<Channel>> {
        Ok(self.sql.prepare(sql.to_string(), None).await?)
    }

    /// Runs a server action with a JSON body; returns the body of its
    /// (single) result.
    pub async fn action(&mut self, name: &str, body: &str) -> Result<Vec<u8>> {
        let results = self
            .do_action(name, body.as_bytes().to_vec().into())
            .await?;
        Ok(results
            .iter()
            .flat_map(|r| r.body.iter().copied())
            .collect())
    }

    /// Cancels the query a `FlightInfo` (from `GetFlightInfo`) names, from
    /// any connection: its result ends with `Cancelled` and its query slot
    /// is given back at once. Only its user or an admin may.
    pub async fn cancel(&mut self, info: &FlightInfo) -> Result<arrow_flight::CancelStatus> {
        let request = arrow_flight::CancelFlightInfoRequest::new(info.clone());
        let results = self
            .do_action(
                "CancelFlightInfo",
                prost::Message::encode_to_vec(&request).into(),
            )
            .await?;
        let body = results.first().map(|r| r.body.clone()).unwrap_or_default();
        let result = <arrow_flight::CancelFlightInfoResult as prost::Message>::decode(body)
            .map_err(|e| FlightError::DecodeError(e.to_string()))?;
        Ok(result.status())
    }

    /// Sends an action and collects its results.
    async fn do_action(
        &mut self,
        name: &str,
        body: bytes::Bytes,
    ) -> Result<Vec<arrow_flight::Result>> {
        let action = arrow_flight::Action {
            r#type: name.to_string(),
            body,
        };
        Ok(self
            .sql
            .do_action(action)
            .await?
            .try_collect()
            .await
            .map_err(|status| FlightError::Tonic(Box::new(status)))?)
    }

    /// Uploads a CSV file. `options` is the object inside
    /// `{"ingest_csv": ...}` (table, mode, header, delimiter, columns, ...);
    /// `chunks` are the file's bytes in order, cut anywhere. If `chunks`
    /// fails (or a chunk cannot be encoded), the call is cancelled rather
    /// than ended, so the server commits nothing.
    pub async fn put_csv<S>(&mut self, options: &serde_json::Value, chunks: S) -> Result<CsvLoaded>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let command = serde_json::json!({ "ingest_csv": options }).to_string();
        let descriptor = FlightDescriptor::new_cmd(command);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "chunk",
            DataType::Binary,
            false,
        )]));
        let encoder = FlightDataEncoderBuilder::new()
            .with_schema(schema.clone())
            .with_flight_descriptor(Some(descriptor));
        let batches = chunks.map(move |chunk| {
            let bytes = chunk.map_err(|e| FlightError::ExternalError(Box::new(e)))?;
            let column = BinaryArray::from_vec(vec![bytes.as_ref()]);
            Ok(RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(column)],
            )?)
        });
        // Any failure, reading or encoding, must cancel the call: a stream
        // that just ended would have the server commit what it got.
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        let encoded = Box::pin(encoder.build(batches));
        let data = futures::stream::unfold(
            (encoded, Some(failed_tx)),
            |(mut encoded, mut failed_tx)| async move {
                match encoded.next().await {
                    Some(Ok(data)) => Some((data, (encoded, failed_tx))),
                    Some(Err(e)) => {
                        if let Some(tx) = failed_tx.take() {
                            let _ = tx.send(e);
                        }
                        futures::future::pending().await
                    }
                    None => None,
                }
            },
        );
        let put = async {
            let results: Vec<PutResult> = self
                .sql
                .do_put(data)
                .await?
                .try_collect()
                .await
                .map_err(|status| FlightError::Tonic(Box::new(status)))?;
            let body = results
                .first()
                .map(|r| r.app_metadata.clone())
                .unwrap_or_default();
            serde_json::from_slice::<CsvLoaded>(&body)
                .map_err(|e| ClientError::Answer(e.to_string()))
        };
        tokio::select! {
            loaded = put => loaded,
            Ok(e) = failed_rx => Err(match e {
                FlightError::ExternalError(inner) => match inner.downcast::<std::io::Error>() {
                    Ok(io) => ClientError::Read(*io),
                    Err(other) => ClientError::Flight(FlightError::ExternalError(other)),
                },
                other => ClientError::Flight(other),
            }),
        }
    }

    /// Bulk-ingests batches into a table; returns the rows written.
    pub async fn ingest(&mut self, request: Ingest<'_>, batches: Vec<RecordBatch>) -> Result<i64> {
        let mut options = HashMap::new();
        if let Some(key) = request.idempotency_key {
            options.insert(IDEMPOTENCY_KEY_OPTION.to_string(), key.to_string());
        }
        let command = CommandStatementIngest {
            table_definition_options: Some(request.mode.options()),
            table: request.table.to_string(),
            schema: request.schema.map(str::to_string),
            catalog: None,
            temporary: false,
            transaction_id: None,
            options,
        };
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        Ok(self.sql.execute_ingest(command, stream).await?)
    }
}
