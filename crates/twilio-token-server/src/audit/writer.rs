//! The writer threads: group commit of audit records.
//!
//! Requests put their record on a bounded queue and wait. A writer thread takes every record
//! that is waiting, up to [`MAX_BATCH`], commits them in one transaction and answers each
//! request. While one batch commits, the next one forms, so the cost of a commit (an fsync) is
//! shared by all the requests that arrived during the previous one. With several threads (one
//! per sink, each with its own connection) several batches commit at once.
//!
//! The sinks block (SQLite, and the synchronous PostgreSQL client, which runs its own small
//! runtime), so the writers are OS threads rather than tasks of the server's runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

use super::{AuditError, AuditRecord, AuditSink, MAX_BATCH, MAX_QUEUED};

/// One request to the writer thread.
// Records are nearly every job, so boxing them would add an allocation per request to save
// space in the rare probes.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// Commit a record and report the result.
    Record(AuditRecord, oneshot::Sender<Result<(), AuditError>>),
    /// Prepare the sink and report the result to a waiting thread.
    Prepare(mpsc::Sender<Result<(), AuditError>>),
    /// Prepare the sink and report the result to a waiting task.
    Probe(oneshot::Sender<Result<(), AuditError>>),
}

/// The queue into a running writer thread.
pub(super) struct Writer {
    sink_name: &'static str,
    queue: SyncSender<Job>,
    failing: Arc<AtomicBool>,
}

impl Writer {
    /// Starts one writer thread per sink, all taking jobs from one queue. The threads end when
    /// the last `Writer` is dropped and the queue is empty.
    ///
    /// # Panics
    ///
    /// Panics when `sinks` is empty.
    pub(super) fn spawn(sinks: Vec<Box<dyn AuditSink>>) -> Writer {
        let sink_name = sinks[0].name();
        let (queue, jobs) = mpsc::sync_channel(MAX_QUEUED);
        let shared = Arc::new(Shared {
            jobs: Mutex::new(jobs),
            outage: Mutex::new(None),
        });
        let failing = Arc::new(AtomicBool::new(false));
        for (index, sink) in sinks.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let failing = Arc::clone(&failing);
            let spawned = std::thread::Builder::new()
                .name(format!("audit-writer-{index}"))
                .spawn(move || run(sink, &shared, &failing));
            if let Err(error) = spawned {
                // Without any thread the queue's receiver is dropped, so every write fails.
                tracing::error!(%error, "failed to start an audit writer thread");
            }
        }
        Writer {
            sink_name,
            queue,
            failing,
        }
    }

    /// Returns true when the last batch failed.
    pub(super) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Prepares the sink and waits for the result, blocking the calling thread.
    pub(super) fn prepare(&self) -> Result<(), AuditError> {
        let (sender, receiver) = mpsc::channel();
        self.queue
            .send(Job::Prepare(sender))
            .map_err(|_| self.stopped())?;
        receiver.recv().map_err(|_| self.stopped())?
    }

    /// Prepares the sink, reconnecting after a failure, and waits for the result.
    pub(super) async fn probe(&self) -> Result<(), AuditError> {
        let (sender, receiver) = oneshot::channel();
        match self.queue.try_send(Job::Probe(sender)) {
            Ok(()) => receiver.await.map_err(|_| self.stopped())?,
            // A full queue means batches are being tried anyway.
            Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(self.stopped()),
        }
    }

    /// Queues a record and waits until its batch is committed.
    pub(super) async fn write(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (sender, receiver) = oneshot::channel();
        match self.queue.try_send(Job::Record(record, sender)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(AuditError::new(
                    self.sink_name,
                    format!("{MAX_QUEUED} records are already waiting to be written"),
                ));
            }
            Err(TrySendError::Disconnected(_)) => return Err(self.stopped()),
        }
        receiver.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> AuditError {
        AuditError::new(self.sink_name, "the audit writer thread is not running")
    }
}

/// What the writer threads share.
struct Shared {
    jobs: Mutex<Receiver<Job>>,
    outage: Mutex<Option<Outage>>,
}

/// The state of an outage, for logging it once when it starts and once when it ends.
struct Outage {
    started: Instant,
    failed_records: u64,
}

fn run(mut sink: Box<dyn AuditSink>, shared: &Shared, failing: &AtomicBool) {
    let mut prepared = false;
    let mut records = Vec::with_capacity(MAX_BATCH);
    let mut waiters = Vec::with_capacity(MAX_BATCH);
    let mut preparers = Vec::new();
    let mut probes = Vec::new();

    loop {
        {
            // One thread at a time collects a batch; the others commit theirs meanwhile.
            let jobs = shared.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = jobs.recv() else {
                return;
            };
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Record(record, waiter) => {
                        records.push(record);
                        waiters.push(waiter);
                    }
                    Job::Prepare(waiter) => preparers.push(waiter),
                    Job::Probe(waiter) => probes.push(waiter),
                }
                if records.len() < MAX_BATCH {
                    next = jobs.try_recv().ok();
                }
            }
        }

        let result = commit(sink.as_mut(), &mut prepared, &records);
        failing.store(result.is_err(), Ordering::Relaxed);
        {
            let mut outage = shared.outage.lock().unwrap_or_else(PoisonError::into_inner);
            log_transition(sink.name(), &result, &records, &mut outage);
        }

        for waiter in waiters.drain(..) {
            // The request may have timed out and gone; its record is committed all the same.
            let _ = waiter.send(result.clone());
        }
        for waiter in preparers.drain(..) {
            let _ = waiter.send(result.clone());
        }
        for waiter in probes.drain(..) {
            let _ = waiter.send(result.clone());
        }
        records.clear();
    }
}

fn commit(
    sink: &mut dyn AuditSink,
    prepared: &mut bool,
    records: &[AuditRecord],
) -> Result<(), AuditError> {
    let reused_connection = *prepared;
    // A start-up check or readiness probe (no records) always asks the sink, so that a
    // connection broken while idle is found and replaced.
    if !*prepared || records.is_empty() {
        *prepared = false;
        sink.prepare()?;
        *prepared = true;
    }
    if records.is_empty() {
        return Ok(());
    }
    let mut result = sink.write_batch(records);
    if result.is_err() && reused_connection {
        // The connection may have broken while idle, such as when the database restarted, and
        // the client notices only on use: reconnect once and retry.
        *prepared = false;
        sink.prepare()?;
        result = sink.write_batch(records);
    }
    // After any failure the connection may be broken, so the next batch reconnects.
    *prepared = result.is_ok();
    result
}

/// Logs the first failure of an outage with its request ids and the recovery with a count, so
/// an outage under load writes two lines instead of one per request.
fn log_transition(
    sink: &'static str,
    result: &Result<(), AuditError>,
    records: &[AuditRecord],
    outage: &mut Option<Outage>,
) {
    match (result, outage.as_mut()) {
        // A failed start-up check or readiness probe is reported by its caller.
        (Err(_), None) if records.is_empty() => {}
        (Err(error), None) => {
            let request_ids: Vec<&str> = records
                .iter()
                .take(5)
                .map(|record| record.request_id.as_str())
                .collect();
            tracing::error!(
                sink,
                error = %error.message,
                records = records.len(),
                ?request_ids,
                "audit records could not be written; further failures are counted until the \
                 sink recovers"
            );
            *outage = Some(Outage {
                started: Instant::now(),
                failed_records: records.len() as u64,
            });
        }
        (Err(_), Some(current)) => current.failed_records += records.len() as u64,
        (Ok(()), Some(current)) => {
            tracing::info!(
                sink,
                failed_records = current.failed_records,
                outage_secs = current.started.elapsed().as_secs(),
                "audit sink recovered"
            );
            *outage = None;
        }
        (Ok(()), None) => {}
    }
}
