//! Authentication at the door, below tonic: a call's `authorization`
//! header is checked before tonic reads or decodes a byte of its body, so
//! an unauthenticated client can send nothing bigger than its headers,
//! holds no request permit and no query slot, and gets its refusal at
//! once. The caller's [`Identity`] rides on to the service in the
//! request's extensions, and the call is served acting as its user, so
//! that the versions it commits name who made them. Failed password logins are throttled per client
//! address and per user name (see `lakehouse_core::auth`).

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::status::ToStatus;
use lakehouse_core::auth::{Authenticator, Identity};
use lakehouse_core::catalog::acting_as;

/// Wraps the Flight service so that every call is authenticated first.
#[derive(Debug, Clone)]
pub struct Gate {
    auth: Arc<Authenticator>,
}

impl Gate {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for Gate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gated {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// The service behind a [`Gate`].
#[derive(Debug, Clone)]
pub struct Gated<S> {
    auth: Arc<Authenticator>,
    inner: S,
}

type Answer = http::Response<Body>;

impl<S> tower::Service<http::Request<Body>> for Gated<S>
where
    S: tower::Service<http::Request<Body>, Response = Answer, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let client = client_address(&request);
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            match auth.authenticate_from(client, header.as_deref()).await {
                Ok(identity) => {
                    let user = identity.name.clone();
                    request.extensions_mut().insert::<Identity>(identity);
                    acting_as(user, inner.call(request)).await
                }
                Err(refused) => Ok(refused.to_status().into_http()),
            }
        })
    }
}

/// The peer's address, over plain TCP or TLS.
fn client_address<B>(request: &http::Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
        .and_then(TcpConnectInfo::remote_addr)
        .map(|address| address.ip())
}
