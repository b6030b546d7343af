//! The lease table in DynamoDB: the table itself, and each lease operation as one
//! conditional write. Throttling, timeouts and 5xx answers are retried with jittered backoff.

use crate::error::{BadLeaseItem, LeaseError, is_throttle_code};
use crate::lease::{Lease, LeaseKey};
use crate::lease_item::{attr, from_item, to_item};
use crate::metrics::{Count, Counters};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How calls to the lease table are timed and retried.
#[derive(Debug, Clone)]
pub(crate) struct CallPolicy {
    /// Longest wait for one call.
    pub timeout: Duration,
    /// Attempts per operation (the first included).
    pub attempts: usize,
    /// First retry delay (doubling, jittered, at most 1 s).
    pub min_backoff: Duration,
}

/// A lease table: its name, the DynamoDB client, and the retry policy.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    pub(crate) client: Client,
    pub(crate) name: String,
    policy: CallPolicy,
    counters: Arc<Counters>,
}

/// The outcome of one conditional write.
pub(crate) enum Written<T> {
    Done(T),
    ConditionFailed,
}

/// Expression attribute names used by every write.
fn names() -> HashMap<String, String> {
    [
        ("#k", attr::KEY),
        ("#o", attr::OWNER),
        ("#c", attr::COUNTER),
        ("#cp", attr::CHECKPOINT),
        ("#cps", attr::CHECKPOINT_SUB),
        ("#p", attr::PENDING),
        ("#ps", attr::PENDING_SUB),
        ("#sw", attr::OWNER_SWITCHES),
        ("#ch", attr::CHILDREN),
        ("#h", attr::HANDOFF_TO),
        ("#pst", attr::PENDING_STATE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub(crate) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub(crate) fn key_of(key: &LeaseKey) -> HashMap<String, AttributeValue> {
    HashMap::from([(attr::KEY.to_owned(), s(key.as_str()))])
}

/// The names an expression mentions, from [`names`] (DynamoDB refuses unused ones).
pub(crate) fn used_names(expressions: &[&str]) -> HashMap<String, String> {
    let mut all: Vec<(String, String)> = names().into_iter().collect();
    // Longest first, so `#cp` is not taken for `#c`.
    all.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut used = HashMap::new();
    for e in expressions {
        let mut rest = e.to_string();
        for (k, v) in &all {
            if rest.contains(k.as_str()) {
                rest = rest.replace(k.as_str(), "");
                used.insert(k.clone(), v.clone());
            }
        }
    }
    used
}

impl LeaseTable {
    /// A handle on an existing lease table, to read or write leases directly (tools, tests);
    /// calls time out after 5 s and are tried 5 times.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self::with_policy(
            client,
            name,
            CallPolicy {
                timeout: Duration::from_secs(5),
                attempts: 5,
                min_backoff: Duration::from_millis(50),
            },
            Arc::new(Counters::default()),
        )
    }

    pub(crate) fn with_policy(
        client: Client,
        name: impl Into<String>,
        policy: CallPolicy,
        counters: Arc<Counters>,
    ) -> Self {
        LeaseTable {
            client,
            name: name.into(),
            policy,
            counters,
        }
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn service_error<E, R>(
        &self,
        operation: &'static str,
        err: SdkError<E, R>,
    ) -> LeaseError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        self.counters.add(Count::DynamoError);
        let code = err.code().map(str::to_owned);
        if code.as_deref().is_some_and(is_throttle_code) {
            self.counters.add(Count::Throttle);
            return LeaseError::Throttled { operation };
        }
        let message = match err.message() {
            Some(m) => m.to_owned(),
            None => format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
        };
        LeaseError::Service {
            operation,
            code,
            message,
        }
    }

    /// Runs `call` with a timeout per attempt, retrying transient failures with backoff
    /// until the attempts run out or `deadline` passes.
    pub(crate) async fn retried<T, F, Fut>(
        &self,
        operation: &'static str,
        deadline: Option<Instant>,
        mut call: F,
    ) -> Result<T, LeaseError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LeaseError>>,
    {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_backoff)
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .with_max_times(self.policy.attempts.saturating_sub(1))
            .build();
        loop {
            let mut timeout = self.policy.timeout;
            if let Some(d) = deadline {
                timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            }
            let result = match tokio::time::timeout(timeout, call()).await {
                Ok(r) => r,
                Err(_) => {
                    self.counters.add(Count::DynamoError);
                    Err(LeaseError::Timeout { operation })
                }
            };
            match result {
                Err(e) if e.is_transient() => {
                    let Some(delay) = delays.next() else {
                        return Err(e);
                    };
                    if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                        return Err(e);
                    }
                    tracing::debug!(operation, error = %e, ?delay, "lease table call retried");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Creates the table if it is missing (on-demand billing, hash key `leaseKey` S) and waits
    /// until it is `ACTIVE`, at most `ready_timeout`. A table with another key schema is an
    /// [`LeaseError::InvalidTable`].
    pub async fn ensure(&self, ready_timeout: Duration) -> Result<(), LeaseError> {
        let deadline = Instant::now() + ready_timeout;
        let mut created = false;
        let mut poll = Duration::from_millis(20);
        loop {
            let described = self
                .retried("DescribeTable", Some(deadline), || async {
                    match self
                        .client
                        .describe_table()
                        .table_name(&self.name)
                        .send()
                        .await
                    {
                        Ok(out) => Ok(out.table),
                        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                        Err(e) => Err(self.service_error("DescribeTable", e)),
                    }
                })
                .await?;
            match described {
                None if !created => {
                    self.create_table().await?;
                    created = true;
                    continue;
                }
                None => {}
                Some(t) => {
                    self.check_schema(&t)?;
                    if t.table_status == Some(TableStatus::Active) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() + poll >= deadline {
                return Err(LeaseError::InvalidTable {
                    table: self.name.clone(),
                    reason: format!("not ACTIVE after {ready_timeout:?}"),
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_secs(1));
        }
    }

    async fn create_table(&self) -> Result<(), LeaseError> {
        tracing::info!(table = %self.name, "creating the lease table");
        let build = |name: &str| {
            Ok::<_, LeaseError>((
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| self.build_error("CreateTable", e))?,
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| self.build_error("CreateTable", e))?,
            ))
        };
        let (def, key) = build(attr::KEY)?;
        self.retried("CreateTable", None, || async {
            match self
                .client
                .create_table()
                .table_name(&self.name)
                .attribute_definitions(def.clone())
                .key_schema(key.clone())
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // Another worker created it meanwhile.
                Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
                Err(e) => Err(self.service_error("CreateTable", e)),
            }
        })
        .await
    }

    fn build_error(&self, operation: &'static str, e: impl std::fmt::Display) -> LeaseError {
        LeaseError::Service {
            operation,
            code: None,
            message: e.to_string(),
        }
    }

    fn check_schema(
        &self,
        t: &aws_sdk_dynamodb::types::TableDescription,
    ) -> Result<(), LeaseError> {
        let keys = t.key_schema();
        let hash_ok = keys.len() == 1
            && keys[0].attribute_name() == attr::KEY
            && keys[0].key_type() == &KeyType::Hash;
        let type_ok = t.attribute_definitions().iter().any(|d| {
            d.attribute_name() == attr::KEY && d.attribute_type() == &ScalarAttributeType::S
        });
        if hash_ok && type_ok {
            Ok(())
        } else {
            Err(LeaseError::InvalidTable {
                table: self.name.clone(),
                reason: "the key schema must be exactly one HASH key leaseKey of type S".into(),
            })
        }
    }

    /// Every lease (a consistent scan, all pages), and the items that could not be read.
    pub async fn list(&self) -> Result<(Vec<Lease>, Vec<BadLeaseItem>), LeaseError> {
        let mut leases = Vec::new();
        let mut bad = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .retried("Scan", None, || async {
                    self.client
                        .scan()
                        .table_name(&self.name)
                        .consistent_read(true)
                        .set_exclusive_start_key(start.clone())
                        .send()
                        .await
                        .map_err(|e| self.service_error("Scan", e))
                })
                .await?;
            for item in page.items() {
                match from_item(item) {
                    Ok(l) => leases.push(l),
                    Err(e) => {
                        self.counters.add(Count::BadItem);
                        tracing::warn!(error = %e, "lease item skipped");
                        bad.push(e);
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        leases.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((leases, bad))
    }

    /// One lease (consistent read), if it exists.
    pub async fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, LeaseError> {
        self.get_until(key, None).await
    }

    /// One lease (consistent read), trying until `deadline`.
    pub(crate) async fn get_until(
        &self,
        key: &LeaseKey,
        deadline: impl Into<Option<Instant>>,
    ) -> Result<Option<Lease>, LeaseError> {
        let deadline = deadline.into();
        let out = self
            .retried("GetItem", deadline, || async {
                self.client
                    .get_item()
                    .table_name(&self.name)
                    .set_key(Some(key_of(key)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| self.service_error("GetItem", e))
            })
            .await?;
        match out.item {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    /// Creates `lease` unless a lease with its key exists; whether this call created it.
    pub async fn create_if_absent(&self, lease: &Lease) -> Result<bool, LeaseError> {
        let item = to_item(lease);
        let created = self
            .retried("PutItem", None, || async {
                match self
                    .client
                    .put_item()
                    .table_name(&self.name)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(#k)")
                    .set_expression_attribute_names(Some(used_names(&["#k"])))
                    .send()
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
                    Err(e) => Err(self.service_error("PutItem", e)),
                }
            })
            .await?;
        if created {
            self.counters.add(Count::Created);
        }
        Ok(created)
    }

    /// Deletes a lease whose checkpoint is `SHARD_END`; whether it was deleted.
    pub async fn delete_finished(&self, key: &LeaseKey) -> Result<bool, LeaseError> {
        let values = HashMap::from([(":end".to_owned(), s("SHARD_END"))]);
        let deleted = self
            .retried("DeleteItem", None, || async {
                match self
                    .client
                    .delete_item()
                    .table_name(&self.name)
                    .set_key(Some(key_of(key)))
                    .condition_expression("#cp = :end")
                    .set_expression_attribute_names(Some(used_names(&["#cp"])))
                    .set_expression_attribute_values(Some(values.clone()))
                    .send()
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
                    Err(e) => Err(self.service_error("DeleteItem", e)),
                }
            })
            .await?;
        if deleted {
            self.counters.add(Count::Deleted);
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_an_expression_uses_are_sent() {
        let used = used_names(&["SET #cp = :cp, #c = :next", "#c = :c"]);
        let mut keys: Vec<_> = used.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["#c", "#cp"]);
        assert_eq!(used["#cp"], "checkpoint");
        let used = used_names(&["SET #ps = :ps"]);
        assert_eq!(used.len(), 1, "{used:?}");
    }
}
