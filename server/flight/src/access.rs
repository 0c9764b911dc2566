//! Who made a Flight call.
//!
//! The service wrapper authenticates every call and puts the caller's
//! [`Identity`] in the request's extensions; the handlers read it where
//! the operation becomes known, and check it with
//! [`lakehouse_serving::access`]. A request without one is refused, so a
//! handler reached some other way fails closed.

use tonic::Request;

use lakehouse_core::auth::Identity;
use lakehouse_engine::error::{CoreError, Error, Result};

/// The identity the service wrapper attached to `request`.
pub fn caller<T>(request: &Request<T>) -> Result<Identity> {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Error::from(CoreError::Unauthenticated("authentication required".into())))
}
