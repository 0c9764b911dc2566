//! What a client's session changes about how its statements are planned
//! and run: the schema unqualified table names resolve in, and the time
//! zone of `now()` and of casts to timestamps with a time zone.
//!
//! The protocol boundary runs each call of a session inside
//! [`with_settings`] (as it runs it inside `acting_as` for its user); the
//! engine reads them when it builds a statement's session state, so no
//! signature between the two changes and calls without a session plan
//! exactly as before.

use std::future::Future;

use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionState;

use crate::error::{Error, Result};

/// A session's settings; `None` keeps the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSettings {
    /// The schema unqualified names resolve in (default `public`).
    pub schema: Option<String>,
    /// An IANA name (`Europe/Paris`) or an offset (`+01:00`).
    pub time_zone: Option<String>,
}

tokio::task_local! {
    static SETTINGS: SessionSettings;
}

/// Runs `work` with `settings` applying to the statements it plans.
pub async fn with_settings<F: Future>(settings: SessionSettings, work: F) -> F::Output {
    SETTINGS.scope(settings, work).await
}

/// The current call's settings, if it runs in a session.
pub fn current() -> Option<SessionSettings> {
    SETTINGS.try_with(Clone::clone).ok()
}

/// The schema the current call's session resolves bare names in, if set.
pub fn schema() -> Option<String> {
    current().and_then(|settings| settings.schema)
}

/// `state` with the current call's settings applied.
pub(crate) fn applied(mut state: SessionState) -> SessionState {
    if let Some(settings) = current() {
        let options = state.config_mut().options_mut();
        if let Some(schema) = settings.schema {
            options.catalog.default_schema = schema;
        }
        if let Some(time_zone) = settings.time_zone {
            options.execution.time_zone = Some(time_zone);
            // Functions that read the time zone when made (`now()`) are
            // made again, as DataFusion does for `SET`.
            let config = state.config().options().clone();
            let updated: Vec<_> = state
                .scalar_functions()
                .values()
                .filter_map(|udf| udf.inner().with_updated_config(&config))
                .collect();
            for udf in updated {
                if let Err(error) = state.register_udf(std::sync::Arc::new(udf)) {
                    tracing::warn!(%error, "a function could not take the session's time zone");
                }
            }
        }
    }
    state
}

/// Checks a time zone the way Arrow reads one: an IANA name or an offset.
pub fn check_time_zone(time_zone: &str) -> Result<()> {
    time_zone
        .parse::<arrow::array::timezone::Tz>()
        .map(drop)
        .map_err(|e| {
            Error::invalid(format!(
                "time zone {time_zone:?} is neither an IANA name (Europe/Paris) nor an offset (+01:00): {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_checked() {
        check_time_zone("Europe/Paris").unwrap();
        check_time_zone("+05:30").unwrap();
        check_time_zone("UTC").unwrap();
        let refused = check_time_zone("Mars/Olympus").unwrap_err();
        assert!(refused.to_string().contains("Mars/Olympus"), "{refused}");
    }

    #[tokio::test]
    async fn settings_apply_only_inside_their_scope() {
        assert_eq!(current(), None);
        let settings = SessionSettings {
            schema: Some("sales".into()),
            time_zone: Some("Europe/Paris".into()),
        };
        let inside = with_settings(settings.clone(), async { current() }).await;
        assert_eq!(inside, Some(settings));
        let state = with_settings(
            SessionSettings {
                schema: Some("sales".into()),
                time_zone: None,
            },
            async { applied(datafusion::prelude::SessionContext::new().state()) },
        )
        .await;
        assert_eq!(state.config_options().catalog.default_schema, "sales");
        assert_eq!(state.config_options().execution.time_zone, None);
    }

    #[tokio::test]
    async fn now_answers_in_the_session_time_zone() {
        let settings = SessionSettings {
            schema: None,
            time_zone: Some("Europe/Paris".into()),
        };
        let state = with_settings(settings, async {
            applied(datafusion::prelude::SessionContext::new().state())
        })
        .await;
        let plan = state
            .create_logical_plan("SELECT now() AS t")
            .await
            .unwrap();
        assert_eq!(
            plan.schema().field(0).data_type().to_string(),
            "Timestamp(ns, \"Europe/Paris\")"
        );
    }
}
