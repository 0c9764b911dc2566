//! Who sends an API request, and the permits it holds while served: the
//! same credentials as Flight (a bearer token, or Basic user and
//! password, throttled after failed logins per client address and user)
//! and the same request limits, shared with Flight (see
//! `lakehouse_serving`).

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::{Api, Problem};
use lakehouse_core::auth::Identity;
use lakehouse_serving::requests::RequestPermit;

/// Where the request log learns who the caller was.
#[derive(Clone, Default)]
pub struct AuditUser(Arc<parking_lot::Mutex<Option<String>>>);

impl AuditUser {
    pub fn name(&self) -> Option<String> {
        self.0.lock().clone()
    }
}

/// The authenticated caller of a request, with its request permit.
pub struct Caller {
    pub identity: Identity,
    pub permit: RequestPermit,
}

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Problem> {
        let identity = match &api.auth {
            None => Identity::anonymous(),
            Some(auth) => {
                let client = parts
                    .extensions
                    .get::<ConnectInfo<crate::ClientAddr>>()
                    .map(|info| info.0.0.ip());
                let header = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .map(|value| value.as_bytes());
                auth.authenticate_from(client, header).await?
            }
        };
        if let Some(audit) = parts.extensions.get::<AuditUser>() {
            *audit.0.lock() = Some(identity.name.clone());
        }
        let permit = api.serving.admit(&identity.name)?;
        Ok(Self { identity, permit })
    }
}
