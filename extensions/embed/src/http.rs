//! One JSON-over-HTTP endpoint of an embedding provider, with the
//! behaviour every such provider needs: a timeout per request, retries
//! with exponential backoff on what may pass (a refused or dropped
//! connection, a timeout, 429 and 5xx, honouring `Retry-After`), and errors
//! that say which endpoint failed and how.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::ResolvedModel;
use crate::error::{EmbedError, Result};

/// The first retry waits this long; each further one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// No wait between attempts is longer, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How much of an error body a message quotes.
const QUOTED_BODY: usize = 300;

#[derive(Debug, Clone)]
pub struct Endpoint {
    client: reqwest::Client,
    /// The configured model's name, for messages.
    model: String,
    url: String,
    bearer: Option<String>,
    retries: u32,
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
    wait: Option<Duration>,
}

impl Endpoint {
    /// `path` below the model's endpoint, e.g. `/api/embed`.
    pub fn new(model: &ResolvedModel, path: &str, bearer: Option<String>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(model.timeout)
            .connect_timeout(model.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| EmbedError::Config {
                model: model.name.clone(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            client,
            model: model.name.clone(),
            url: format!("{}{path}", model.endpoint),
            bearer,
            retries: model.retries,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `body` and parses the answer as `T`, retrying what may pass.
    pub async fn post<T: DeserializeOwned>(&self, body: &Value) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(body).await {
                Ok(answer) => return self.parse(&answer),
                Err(failure) => failure,
            };
            if !failure.retry || attempt > self.retries {
                return Err(EmbedError::Endpoint {
                    model: self.model.clone(),
                    endpoint: self.url.clone(),
                    attempts: attempt,
                    message: failure.message,
                });
            }
            let backoff = FIRST_BACKOFF * 2u32.saturating_pow(attempt - 1);
            let wait = failure.wait.unwrap_or(backoff).min(MAX_BACKOFF);
            tracing::warn!(
                model = %self.model, endpoint = %self.url, attempt, wait_ms = wait.as_millis() as u64,
                "embedding request failed, retrying: {}", failure.message
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, body: &Value) -> Result<bytes::Bytes, Failure> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| Failure {
            message: describe(&e),
            retry: e.is_timeout() || e.is_connect() || e.is_request(),
            wait: None,
        })?;
        let status = response.status();
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| Failure {
            message: describe(&e),
            retry: true,
            wait: None,
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let text = String::from_utf8_lossy(&bytes);
        let quoted: String = text.chars().take(QUOTED_BODY).collect();
        Err(Failure {
            message: format!("HTTP {status}: {}", quoted.trim()),
            retry: status.as_u16() == 429 || status.is_server_error(),
            wait,
        })
    }

    fn parse<T: DeserializeOwned>(&self, answer: &[u8]) -> Result<T> {
        serde_json::from_slice(answer).map_err(|e| {
            let text = String::from_utf8_lossy(answer);
            let quoted: String = text.chars().take(QUOTED_BODY).collect();
            EmbedError::Endpoint {
                model: self.model.clone(),
                endpoint: self.url.clone(),
                attempts: 1,
                message: format!("the answer is not the expected JSON ({e}): {quoted}"),
            }
        })
    }
}

/// reqwest's error with its causes, which hold the useful part
/// ("connection refused", "operation timed out").
fn describe(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
