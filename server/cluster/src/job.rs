//! A distributed query's job, cancelled at the scheduler when the server
//! stops reading its result.
//!
//! Ballista's `DistributedQueryExec` submits a job and polls the scheduler
//! until it is done. When the server drops the result early (the client
//! cancelled, `query_timeout_secs` passed, the connection went away) the
//! polling stops but the job would run on, holding the executors' task
//! slots for nobody. [`CancelOnDrop`] wraps the plan and asks the scheduler
//! to cancel the job when its stream is dropped before the end.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::CancelJobParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::Stream;
use tracing::{debug, warn};

type Distributed = DistributedQueryExec<LogicalPlanNode>;

/// A `DistributedQueryExec` whose job is cancelled if its result is
/// dropped unfinished. Downcasts see the wrapped plan.
#[derive(Debug)]
pub struct CancelOnDrop {
    inner: Arc<Distributed>,
    scheduler_url: String,
}

impl CancelOnDrop {
    /// Wraps `plan` when it is a distributed query; other plans (Ballista
    /// runs DDL-like plans locally) are returned as they are.
    pub fn wrap(plan: Arc<dyn ExecutionPlan>, scheduler_url: &str) -> Arc<dyn ExecutionPlan> {
        let any: Arc<dyn Any + Send + Sync> = plan.clone();
        match any.downcast::<Distributed>() {
            Ok(inner) => Arc::new(Self {
                inner,
                scheduler_url: scheduler_url.to_string(),
            }),
            Err(_) => plan,
        }
    }
}

impl DisplayAs for CancelOnDrop {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)
    }
}

impl ExecutionPlan for CancelOnDrop {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.inner.as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(JobStream {
            stream: self.inner.execute(partition, context)?,
            plan: Arc::clone(&self.inner),
            scheduler_url: self.scheduler_url.clone(),
            ended: false,
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}

/// A job's results; the job is cancelled if this is dropped before the
/// stream ends.
struct JobStream {
    stream: SendableRecordBatchStream,
    plan: Arc<Distributed>,
    scheduler_url: String,
    /// The stream ended or failed: the job is over, nothing to cancel.
    ended: bool,
}

impl Stream for JobStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.stream.as_mut().poll_next(cx);
        if let Poll::Ready(None | Some(Err(_))) = next {
            self.ended = true;
        }
        next
    }
}

impl RecordBatchStream for JobStream {
    fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }
}

impl Drop for JobStream {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // The id is known once the scheduler accepted the job; a stream
        // dropped before that submitted nothing that could run on.
        let Some(job_id) = self.plan.job_id() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(%job_id, "dropped outside a runtime: the cluster job is not cancelled");
            return;
        };
        let url = self.scheduler_url.clone();
        runtime.spawn(async move {
            let cancelled = async {
                SchedulerGrpcClient::connect(url.clone())
                    .await?
                    .cancel_job(CancelJobParams {
                        job_id: job_id.to_string(),
                    })
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            };
            match cancelled.await {
                Ok(()) => debug!(%job_id, "cancelled the unfinished cluster job"),
                Err(error) => {
                    warn!(%job_id, %url, %error, "could not cancel the unfinished cluster job")
                }
            }
        });
    }
}
