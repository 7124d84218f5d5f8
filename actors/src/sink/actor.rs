//! The ResultSink actor: buffers results and writes them in batches off the actor threads.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use super::batch::ResultBuffer;
use super::writer::ResultWriter;
use crate::model::ProbeResult;

/// Results handed to the writer at once, at most.
const BATCH_MAX: usize = 8192;

/// The sink actor.
#[derive(Debug)]
pub struct ResultSink;

/// What the sink starts with.
#[derive(Debug)]
pub struct SinkArgs {
    /// Where batches go.
    pub writer: Box<dyn ResultWriter>,
    /// Results held at most while the writer is busy or failing.
    pub buffer: usize,
    /// Longest wait before a result is written.
    pub flush_interval: Duration,
}

/// What a drain achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Results written since the sink started.
    pub written: u64,
    /// Results dropped since the sink started (buffer overflow, or a writer still failing at
    /// the drain).
    pub dropped: u64,
}

/// Messages of the sink.
#[derive(Debug, RactorMessage)]
pub enum SinkMsg {
    /// One result to write.
    Record(ProbeResult),
    /// Time to hand the buffer to the writer (sent to itself every flush interval).
    FlushTick,
    /// The writer finished batch `seq`.
    Written(Box<WriteDone>),
    /// Write everything buffered, then reply (used at shutdown).
    Drain(RpcReplyPort<DrainReport>),
    /// Report the sink's counters.
    Status(RpcReplyPort<SinkStatus>),
}

/// The sink's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkStatus {
    /// Results waiting in memory.
    pub buffered: usize,
    /// Results written since start.
    pub written: u64,
    /// Results dropped since start.
    pub dropped: u64,
    /// True while the writer's last attempt failed.
    pub failing: bool,
}

/// The writer's report on one batch, handing the writer back.
#[derive(Debug)]
pub struct WriteDone {
    seq: u64,
    writer: Box<dyn ResultWriter>,
    batch: Vec<ProbeResult>,
    result: std::io::Result<()>,
}

/// The sink's state.
#[derive(Debug)]
pub struct SinkState {
    buffer: ResultBuffer<ProbeResult>,
    /// `None` while a batch is being written.
    writer: Option<Box<dyn ResultWriter>>,
    write_seq: u64,
    written: u64,
    lost_at_drain: u64,
    failing: bool,
    draining: Vec<RpcReplyPort<DrainReport>>,
}

impl Actor for ResultSink {
    type Msg = SinkMsg;
    type State = SinkState;
    type Arguments = SinkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SinkMsg>,
        args: SinkArgs,
    ) -> Result<SinkState, ActorProcessingErr> {
        myself.send_interval(args.flush_interval, || SinkMsg::FlushTick);
        Ok(SinkState {
            buffer: ResultBuffer::new(args.buffer),
            writer: Some(args.writer),
            write_seq: 0,
            written: 0,
            lost_at_drain: 0,
            failing: false,
            draining: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SinkMsg>,
        msg: SinkMsg,
        state: &mut SinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SinkMsg::Record(result) => {
                state.buffer.push(result);
                if state.buffer.len() >= BATCH_MAX {
                    state.flush(&myself);
                }
            }
            SinkMsg::FlushTick => {
                let dropped = state.buffer.take_dropped_report();
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        total = state.buffer.dropped_total(),
                        "results dropped: the buffer is full"
                    );
                }
                state.flush(&myself);
            }
            SinkMsg::Written(done) => state.written(&myself, *done),
            SinkMsg::Drain(reply) => {
                state.draining.push(reply);
                state.flush(&myself);
                state.maybe_finish_drain();
            }
            SinkMsg::Status(reply) => {
                let _ = reply.send(SinkStatus {
                    buffered: state.buffer.len(),
                    written: state.written,
                    dropped: state.buffer.dropped_total() + state.lost_at_drain,
                    failing: state.failing,
                });
            }
        }
        Ok(())
    }
}

impl SinkState {
    /// Hands the oldest batch to the writer unless it is busy or there is nothing to write.
    fn flush(&mut self, myself: &ActorRef<SinkMsg>) {
        if self.buffer.is_empty() {
            return;
        }
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        self.write_seq += 1;
        let seq = self.write_seq;
        let batch = self.buffer.take(BATCH_MAX);
        let me = myself.clone();
        tokio::task::spawn_blocking(move || {
            let result = writer.write_batch(&batch);
            let _ = me.cast(SinkMsg::Written(Box::new(WriteDone {
                seq,
                writer,
                batch,
                result,
            })));
        });
    }

    fn written(&mut self, myself: &ActorRef<SinkMsg>, done: WriteDone) {
        debug_assert_eq!(done.seq, self.write_seq);
        self.writer = Some(done.writer);
        match done.result {
            Ok(()) => {
                self.written += done.batch.len() as u64;
                if self.failing {
                    self.failing = false;
                    tracing::info!(waiting = self.buffer.len(), "results writer recovered");
                }
                if !self.draining.is_empty() || self.buffer.len() >= BATCH_MAX {
                    self.flush(myself);
                }
            }
            Err(err) => {
                if !self.failing {
                    self.failing = true;
                    tracing::error!(error = %err, keeping = self.buffer.len() + done.batch.len(), "results writer failing; holding results in memory and retrying every flush interval");
                }
                if self.draining.is_empty() {
                    self.buffer.requeue_front(done.batch);
                } else {
                    // Shutting down: one attempt per batch, then report what could not be written.
                    self.lost_at_drain += (done.batch.len() + self.buffer.len()) as u64;
                    self.buffer.take(usize::MAX);
                }
            }
        }
        self.maybe_finish_drain();
    }

    fn maybe_finish_drain(&mut self) {
        if self.draining.is_empty() || self.writer.is_none() || !self.buffer.is_empty() {
            return;
        }
        let report = DrainReport {
            written: self.written,
            dropped: self.buffer.dropped_total() + self.lost_at_drain,
        };
        for reply in self.draining.drain(..) {
            let _ = reply.send(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    #[derive(Debug, Clone, Default)]
    struct MemWriter {
        lines: Arc<Mutex<Vec<String>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl ResultWriter for MemWriter {
        fn write_batch(&mut self, batch: &[ProbeResult]) -> std::io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(std::io::Error::other("disk full"));
            }
            let mut lines = self.lines.lock().unwrap();
            lines.extend(batch.iter().map(|r| r.target.id.to_string()));
            Ok(())
        }
    }

    fn result(i: usize) -> ProbeResult {
        let t = TargetSpec::new(
            Host::Ip(std::net::Ipv4Addr::from(0x7f00_0000 + i as u32).into()),
            ProbeKind::Icmp,
            None,
            Duration::from_secs(10),
            Duration::from_secs(1),
            Arc::default(),
        );
        ProbeResult {
            ts: SystemTime::now(),
            node: NodeName::new("n1").unwrap(),
            target: Arc::new(t),
            epoch: 1,
            outcome: ProbeOutcome::Up {
                rtt: Duration::from_millis(1),
            },
            ssh: None,
        }
    }

    async fn spawn(w: MemWriter, buffer: usize) -> ActorRef<SinkMsg> {
        let args = SinkArgs {
            writer: Box::new(w),
            buffer,
            flush_interval: Duration::from_secs(1),
        };
        Actor::spawn(None, ResultSink, args).await.unwrap().0
    }

    #[tokio::test]
    async fn drain_writes_everything_in_order() {
        let w = MemWriter::default();
        let sink = spawn(w.clone(), 100_000).await;
        for i in 0..20_000 {
            sink.cast(SinkMsg::Record(result(i))).unwrap();
        }
        let report = ractor::call_t!(sink, SinkMsg::Drain, 10_000).unwrap();
        assert_eq!(
            report,
            DrainReport {
                written: 20_000,
                dropped: 0
            }
        );
        let lines = w.lines.lock().unwrap();
        assert_eq!(lines.len(), 20_000);
        assert_eq!(lines[0], "127.0.0.0");
        assert_eq!(lines[19_999], result(19_999).target.id.to_string());
    }

    #[tokio::test]
    async fn a_failing_writer_keeps_a_bounded_buffer_and_recovers() {
        let w = MemWriter::default();
        *w.fail.lock().unwrap() = true;
        let sink = spawn(w.clone(), 100).await;
        for i in 0..150 {
            sink.cast(SinkMsg::Record(result(i))).unwrap();
        }
        sink.cast(SinkMsg::FlushTick).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let st = ractor::call_t!(sink, SinkMsg::Status, 1_000).unwrap();
            if st.failing {
                assert_eq!(st.buffered, 100);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "writer never reported failing"
            );
            tokio::task::yield_now().await;
        }
        *w.fail.lock().unwrap() = false;
        let report = ractor::call_t!(sink, SinkMsg::Drain, 10_000).unwrap();
        let lines = w.lines.lock().unwrap();
        // 150 offered into room for 100: the 50 oldest dropped and counted, the rest written.
        assert_eq!(lines.len() as u64 + report.dropped, 150);
        assert_eq!(lines.len(), 100);
        assert_eq!(lines.last().unwrap(), &result(149).target.id.to_string());
    }
}
