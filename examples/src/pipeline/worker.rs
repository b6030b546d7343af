//! Consumer workers whose processors book every record they get, then checkpoint.

use super::Books;
use async_trait::async_trait;
use kcl::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorError, Scheduler, SchedulerConfig,
    SchedulerError, SchedulerHandle, ShardRecordProcessor,
};
use std::sync::Arc;
use std::time::Duration;

/// Books each record, optionally takes `slow` per batch, and checkpoints after each batch.
#[derive(Debug)]
pub struct CheckingProcessor {
    shard: String,
    books: Arc<Books>,
    slow: Duration,
    /// The last (sequence, sub-sequence) delivered to this processor.
    last: Option<(String, u64)>,
}

impl CheckingProcessor {
    /// A processor of `shard`.
    pub fn new(shard: &str, books: Arc<Books>, slow: Duration) -> Self {
        CheckingProcessor {
            shard: shard.to_owned(),
            books,
            slow,
            last: None,
        }
    }
}

#[async_trait]
impl ShardRecordProcessor for CheckingProcessor {
    async fn initialize(&mut self, _input: InitializeInput) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        if !self.slow.is_zero() {
            // Stands for the work a real processor does.
            tokio::time::sleep(self.slow).await;
        }
        for r in &input.records {
            let here = (r.sequence_number.clone(), r.sub_sequence_number);
            if let Some(last) = &self.last
                && kcl::compare_sequence(&last.0, &here.0).then(last.1.cmp(&here.1))
                    != std::cmp::Ordering::Less
            {
                self.books.with(|l| l.shard_order_violation());
            }
            self.last = Some(here);
            self.books.deliver(&self.shard, &r.data);
        }
        checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn lease_lost(&mut self) {}

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        checkpointer.checkpoint_shard_end().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

/// A running consumer worker.
#[derive(Debug)]
pub struct Worker {
    /// Shuts it down gracefully, and reports.
    pub handle: SchedulerHandle,
    /// The scheduler's task: abort it to kill the worker without a shutdown.
    pub task: tokio::task::JoinHandle<Result<(), SchedulerError>>,
}

impl Worker {
    /// Kills the worker: no shutdown, no release; its leases expire.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Shuts it down gracefully (processors checkpoint, leases are released).
    pub async fn stop(self) {
        self.handle.shutdown().await;
        let _ = self.task.await;
    }
}

/// Starts worker `id` of `application` on `stream`, booking into `books`.
pub fn start_worker(
    sdk: (&aws_sdk_kinesis::Client, &aws_sdk_dynamodb::Client),
    (application, stream): (&str, &str),
    id: &str,
    config: SchedulerConfig,
    books: &Arc<Books>,
    slow: Duration,
) -> Result<Worker, SchedulerError> {
    let books = books.clone();
    let scheduler = Scheduler::builder(application, stream)
        .kinesis(sdk.0.clone())
        .dynamodb(sdk.1.clone())
        .worker_id(id)
        .config(config)
        .processor_factory(move |shard: &str| -> Box<dyn ShardRecordProcessor> {
            Box::new(CheckingProcessor::new(shard, books.clone(), slow))
        })
        .build()?;
    let handle = scheduler.handle();
    let task = tokio::spawn(scheduler.run());
    Ok(Worker { handle, task })
}
