//! Checkpoints: validation errors, two-phase prepare and commit, a refusal after the lease is
//! lost, and a pending checkpoint reported to the next owner.

mod common;

use async_trait::async_trait;
use common::collector::*;
use common::*;
use kcl::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, ShardRecordProcessor,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use tokio::sync::Mutex;

type Row = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

async fn lease_row(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<Row, ProcessorError> {
    Ok(client
        .get_item()
        .table_name(table)
        .key("leaseKey", s(key))
        .consistent_read(true)
        .send()
        .await?
        .item
        .unwrap_or_default())
}

fn attr(row: &Row, name: &str) -> String {
    row.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Tries every kind of bad checkpoint on its first batch.
struct Prober {
    errors: Arc<Mutex<Vec<String>>>,
    engine_table: Option<(aws_sdk_dynamodb::Client, String)>,
}

#[async_trait]
impl ShardRecordProcessor for Prober {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let Some((client, table)) = self.engine_table.take() else {
            return Ok(());
        };
        let mut errors = self.errors.lock().await;
        let first = &input.records[0];
        let last = &input.records[input.records.len() - 1];
        let name = |e: kcl::CheckpointError| {
            format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
                .to_owned()
        };
        errors.push(name(
            checkpointer
                .checkpoint_at("12ab", 0)
                .await
                .expect_err("digits"),
        ));
        let above = format!("{}9", last.sequence_number);
        errors.push(name(
            checkpointer
                .checkpoint_at(&above, 0)
                .await
                .expect_err("above"),
        ));
        errors.push(name(
            checkpointer
                .checkpoint_shard_end()
                .await
                .expect_err("not at end"),
        ));
        // Two-phase: prepared at the first record, then committed.
        let key = checkpointer.shard_id().to_owned();
        let prepared = checkpointer
            .prepare_checkpoint(&first.sequence_number, first.sub_sequence_number)
            .await?;
        let row = lease_row(&client, &table, &key).await?;
        errors.push(format!(
            "pending {}",
            attr(&row, "pendingCheckpoint") == first.sequence_number
        ));
        prepared.commit(checkpointer).await?;
        let row = lease_row(&client, &table, &key).await?;
        errors.push(format!(
            "committed {}",
            attr(&row, "checkpoint") == first.sequence_number
                && !row.contains_key("pendingCheckpoint")
        ));
        // A prepare overtaken by a later checkpoint is refused at commit.
        let stale = checkpointer
            .prepare_checkpoint(&first.sequence_number, first.sub_sequence_number)
            .await?;
        checkpointer
            .checkpoint_record(last)
            .await
            .expect("a good checkpoint");
        errors.push(name(stale.commit(checkpointer).await.expect_err("stale")));
        errors.push(name(
            checkpointer
                .checkpoint_record(first)
                .await
                .expect_err("below"),
        ));
        // Another worker takes the lease: the next checkpoint is refused.
        loop {
            let item = client
                .get_item()
                .table_name(&table)
                .key("leaseKey", s(&key))
                .consistent_read(true)
                .send()
                .await?
                .item
                .unwrap_or_default();
            let counter: u64 = item["leaseCounter"].as_n().map_err(|_| "n")?.parse()?;
            let taken = client
                .update_item()
                .table_name(&table)
                .key("leaseKey", s(&key))
                .update_expression("SET leaseOwner = :o, leaseCounter = :next")
                .condition_expression("leaseCounter = :c")
                .expression_attribute_values(":o", s("intruder"))
                .expression_attribute_values(":c", n(counter))
                .expression_attribute_values(":next", n(counter + 1))
                .send()
                .await;
            if taken.is_ok() {
                break;
            }
        }
        errors.push(name(
            checkpointer
                .checkpoint_record(last)
                .await
                .expect_err("lost"),
        ));
        Ok(())
    }

    async fn shard_ended(&mut self, _c: &mut Checkpointer) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn shutdown_requested(&mut self, _c: &mut Checkpointer) -> Result<(), ProcessorError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkpoints_get_typed_errors_and_a_lost_lease_refuses_them() {
    let engine = engine_unlimited().await;
    stream(&engine, "probe", 1).await;
    put_plain(&engine, "probe", "x", 20, 5).await;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let client = engine.dynamodb_client();
    let w = scheduler_with(
        &engine,
        "probe-app",
        "probe",
        "w1",
        move |_: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(Prober {
                errors: e.clone(),
                engine_table: Some((client.clone(), "probe-app".to_owned())),
            })
        },
    );
    wait_until(Duration::from_secs(20), "all probes", || async {
        errors.lock().await.len() >= 8
    })
    .await;
    w.handle.shutdown().await;
    assert_eq!(
        *errors.lock().await,
        [
            "InvalidSequence",
            "AboveDelivered",
            "NotAtShardEnd",
            "pending true",
            "committed true",
            "BelowLast",
            "BelowLast",
            "LeaseLost"
        ]
    );
}

/// Prepares a two-phase checkpoint on its first batch, reports it, and never commits.
struct Preparer {
    prepared: tokio::sync::mpsc::UnboundedSender<kcl::ExtendedCheckpoint>,
}

#[async_trait]
impl ShardRecordProcessor for Preparer {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let last = input.records.last().ok_or("empty batch")?;
        let prepared = checkpointer
            .prepare_checkpoint(&last.sequence_number, last.sub_sequence_number)
            .await?;
        let _ = self.prepared.send(prepared.position().clone());
        // The side effect is under way when the worker dies.
        std::future::pending::<()>().await;
        Ok(())
    }

    async fn lease_lost(&mut self) {}

    async fn shard_ended(&mut self, _c: &mut Checkpointer) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn shutdown_requested(&mut self, _c: &mut Checkpointer) -> Result<(), ProcessorError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_owner_of_a_lease_with_a_pending_checkpoint_is_told_in_initialize() {
    let engine = engine_unlimited().await;
    stream(&engine, "pending", 1).await;
    put_plain(&engine, "pending", "p", 20, 5).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let w1 = scheduler_with(
        &engine,
        "pending-app",
        "pending",
        "w1",
        move |_: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(Preparer {
                prepared: tx.clone(),
            })
        },
    );
    let prepared = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("prepared in time")
        .expect("a prepared position");
    // The worker dies between prepare and commit.
    w1.run.abort();
    let _ = w1.run.await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w2 = worker(
        &engine,
        ("pending-app", "pending"),
        "w2",
        quick(),
        seen.clone(),
        Arc::new(AtomicU32::new(0)),
        None,
    );
    wait_until(Duration::from_secs(20), "w2 re-reads the shard", || async {
        seen.lock().await.count() >= 20
    })
    .await;
    w2.handle.shutdown().await;
    let seen = seen.lock().await;
    let init = &seen.initialized[0];
    assert_eq!(init.pending_checkpoint.as_ref(), Some(&prepared));
    assert_eq!(
        init.checkpoint.checkpoint,
        kcl::Checkpoint::TrimHorizon,
        "the committed checkpoint did not move"
    );
    assert_eq!(
        seen.count(),
        20,
        "delivered again from the committed checkpoint"
    );
}
