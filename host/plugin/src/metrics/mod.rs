//! What an operator watches: counters and gauges of every rustsink output in the process,
//! labelled `output`, served in the Prometheus text format at `metrics_listen`
//! ([`endpoint`]).
//!
//! One registry serves the whole process, so that outputs which name the same address
//! share one endpoint. Counting never fails and costs an atomic add; gauges of what waits
//! in `store_dir` are read from the store folders when the endpoint is scraped.

pub mod endpoint;

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::destination::DeliveryError;
use crate::pipeline::FlushStatus;
use crate::store::Store;
use crate::wasm::sandbox::ComponentFailure;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Output {
    output: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Waiting {
    output: String,
    /// `store` (waiting for delivery) or `quarantine`.
    place: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cause {
    output: String,
    cause: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Renewal {
    output: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Component {
    output: String,
    component: String,
    failure: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answer {
    output: String,
    code: &'static str,
}

/// Every metric of the process, and the registry that encodes them.
struct Families {
    registry: Registry,
    waiting_objects: Family<Waiting, Gauge>,
    waiting_bytes: Family<Waiting, Gauge>,
    delivered_objects: Family<Output, Counter>,
    delivered_bytes: Family<Output, Counter>,
    delivery_failures: Family<Cause, Counter>,
    credential_renewals: Family<Renewal, Counter>,
    component_failures: Family<Component, Counter>,
    flush_answers: Family<Answer, Counter>,
    flush_seconds: Family<Output, Histogram, fn() -> Histogram>,
    /// The store folders whose backlog the gauges show: (output, folder).
    stores: Mutex<Vec<(String, PathBuf)>>,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("rustsink");
    let waiting_objects = Family::<Waiting, Gauge>::default();
    let waiting_bytes = Family::<Waiting, Gauge>::default();
    let delivered_objects = Family::<Output, Counter>::default();
    let delivered_bytes = Family::<Output, Counter>::default();
    let delivery_failures = Family::<Cause, Counter>::default();
    let credential_renewals = Family::<Renewal, Counter>::default();
    let component_failures = Family::<Component, Counter>::default();
    let flush_answers = Family::<Answer, Counter>::default();
    let flush_seconds = Family::<Output, Histogram, fn() -> Histogram>::new_with_constructor(
        flush_histogram as fn() -> Histogram,
    );
    registry.register(
        "waiting_objects",
        "Objects not yet delivered, in store_dir (place=store) or quarantined (place=quarantine)",
        waiting_objects.clone(),
    );
    registry.register(
        "waiting_bytes",
        "Bytes of the objects not yet delivered, by place as in waiting_objects",
        waiting_bytes.clone(),
    );
    registry.register(
        "delivered_objects",
        "Objects delivered",
        delivered_objects.clone(),
    );
    registry.register(
        "delivered_bytes",
        "Bytes of the objects delivered, as stored (compressed)",
        delivered_bytes.clone(),
    );
    registry.register(
        "delivery_failures",
        "Failed delivery attempts, by cause: io, request, credentials_refused, key_taken, \
         invalid_key",
        delivery_failures.clone(),
    );
    registry.register(
        "credential_renewals",
        "Fetches and renewals of the S3 credentials, by result: ok or failed",
        credential_renewals.clone(),
    );
    registry.register(
        "component_failures",
        "Calls of a filter or sink component that failed, by component and failure: trap, \
         timeout, out_of_memory, error",
        component_failures.clone(),
    );
    registry.register(
        "flush_answers",
        "Answers to Fluent Bit's flushes, by code: ok, retry, error",
        flush_answers.clone(),
    );
    registry.register(
        "flush_seconds",
        "How long each flush held Fluent Bit's thread, from the call to the answer",
        flush_seconds.clone(),
    );
    Families {
        registry,
        waiting_objects,
        waiting_bytes,
        delivered_objects,
        delivered_bytes,
        delivery_failures,
        credential_renewals,
        component_failures,
        flush_answers,
        flush_seconds,
        stores: Mutex::new(Vec::new()),
    }
});

/// Buckets from 0.5 ms to about 6 s, each 1.41 times the one before (two to a doubling,
/// for quantiles within 20%): a flush takes milliseconds, a few take seconds (a full group,
/// a slow disk).
fn flush_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, std::f64::consts::SQRT_2, 28))
}

/// The metrics of one output: a cheap handle, cloned into every part that counts.
#[derive(Debug, Clone)]
pub struct Metrics {
    output: String,
}

impl Metrics {
    /// The metrics of the output named `output` (its `Alias`, or `rustsink.N`).
    pub fn new(output: &str) -> Metrics {
        Metrics {
            output: output.to_owned(),
        }
    }

    fn output(&self) -> Output {
        Output {
            output: self.output.clone(),
        }
    }

    /// Shows what waits in the store folder `folder` until [`Metrics::forget_store`].
    pub fn watch_store(&self, folder: &Path) {
        let mut stores = FAMILIES
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stores.retain(|(output, _)| *output != self.output);
        stores.push((self.output.clone(), folder.to_owned()));
    }

    /// Stops showing this output's store: the output has stopped.
    pub fn forget_store(&self) {
        let families = &*FAMILIES;
        let mut stores = families
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stores.retain(|(output, _)| *output != self.output);
        for place in ["store", "quarantine"] {
            let labels = Waiting {
                output: self.output.clone(),
                place,
            };
            families.waiting_objects.remove(&labels);
            families.waiting_bytes.remove(&labels);
        }
    }

    /// An object of `bytes` was delivered.
    pub fn delivered(&self, bytes: u64) {
        FAMILIES
            .delivered_objects
            .get_or_create(&self.output())
            .inc();
        FAMILIES
            .delivered_bytes
            .get_or_create(&self.output())
            .inc_by(bytes);
    }

    /// A delivery attempt failed.
    pub fn delivery_failed(&self, error: &DeliveryError) {
        let cause = match error {
            DeliveryError::Io { .. } => "io",
            DeliveryError::Request {
                credentials_refused: true,
                ..
            } => "credentials_refused",
            DeliveryError::Request { .. } => "request",
            DeliveryError::KeyTaken { .. } => "key_taken",
            DeliveryError::InvalidKey { .. } => "invalid_key",
            DeliveryError::Convert(_) => "convert",
        };
        FAMILIES
            .delivery_failures
            .get_or_create(&Cause {
                output: self.output.clone(),
                cause,
            })
            .inc();
    }

    /// Credentials were fetched or renewed (`ok`), or that failed.
    pub fn credentials_renewed(&self, ok: bool) {
        FAMILIES
            .credential_renewals
            .get_or_create(&Renewal {
                output: self.output.clone(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// A call of the component `component` failed.
    pub fn component_failed(&self, component: &str, failure: &ComponentFailure) {
        let failure = match failure {
            ComponentFailure::Trap(_) => "trap",
            ComponentFailure::Timeout(_) => "timeout",
            ComponentFailure::OutOfMemory(_) => "out_of_memory",
            ComponentFailure::Failed { .. } => "error",
        };
        FAMILIES
            .component_failures
            .get_or_create(&Component {
                output: self.output.clone(),
                component: component.to_owned(),
                failure,
            })
            .inc();
    }

    /// Fluent Bit was answered `status`, `held` after it called.
    pub fn answered(&self, status: FlushStatus, held: Duration) {
        let code = match status {
            FlushStatus::Ok => "ok",
            FlushStatus::Retry => "retry",
            FlushStatus::Error => "error",
        };
        FAMILIES
            .flush_answers
            .get_or_create(&Answer {
                output: self.output.clone(),
                code,
            })
            .inc();
        FAMILIES
            .flush_seconds
            .get_or_create(&self.output())
            .observe(held.as_secs_f64());
    }
}

/// Every metric of the process in the OpenMetrics text format, with the store gauges read
/// now.
pub fn encode() -> String {
    let families = &*FAMILIES;
    // Held while the gauges are set, so that a store forgotten meanwhile is not shown
    // again.
    let stores = families
        .stores
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for (output, folder) in stores.iter() {
        let backlog = Store::backlog(folder);
        for (place, usage) in [
            ("store", backlog.waiting),
            ("quarantine", backlog.quarantined),
        ] {
            let labels = Waiting {
                output: output.clone(),
                place,
            };
            families
                .waiting_objects
                .get_or_create(&labels)
                .set(saturating_i64(usage.objects));
            families
                .waiting_bytes
                .get_or_create(&labels)
                .set(saturating_i64(usage.bytes));
        }
    }
    drop(stores);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &families.registry);
    text
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
