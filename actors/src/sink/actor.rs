//! The ResultSink actor: buffers records (results and state events) and writes them in batches,
//! off the actor threads, to one or more writers ("lanes"). Each lane has its own bounded buffer
//! and its own failure state, so a failing SQLite file does not hold up the JSON-lines file.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use super::batch::ResultBuffer;
use super::writer::ResultWriter;
use crate::link::Link;
use crate::model::{ProbeResult, Record, StateEvent};
use crate::notify::msg::NotifyMsg;
use crate::state::NodeState;

/// Records handed to a writer at once, at most.
const BATCH_MAX: usize = 8192;

/// While a lane keeps dropping, how often the running count is logged again.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The sink actor.
#[derive(Debug)]
pub struct ResultSink;

/// What the sink starts with.
#[derive(Debug)]
pub struct SinkArgs {
    /// Where batches go: one lane per writer.
    pub writers: Vec<Box<dyn ResultWriter>>,
    /// Records held at most per lane while its writer is busy or failing.
    pub buffer: usize,
    /// Longest wait before a record is written.
    pub flush_interval: Duration,
    /// Where the latest result per target and the node's counters are kept.
    pub state: Arc<NodeState>,
    /// Where accepted state events go on to (webhooks), when notifiers are set up.
    pub notify: Option<Link<NotifyMsg>>,
}

/// What a drain achieved (summed over lanes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Records written since the sink started.
    pub written: u64,
    /// Records dropped since the sink started (buffer overflow, or a writer still failing at
    /// the drain).
    pub dropped: u64,
}

/// Messages of the sink.
#[derive(Debug, RactorMessage)]
pub enum SinkMsg {
    /// One result to write.
    Record(ProbeResult),
    /// One confirmed state change to write.
    Event(StateEvent),
    /// Time to hand the buffers to the writers (sent to itself every flush interval).
    FlushTick,
    /// A writer finished a batch.
    Written(Box<WriteDone>),
    /// Write everything buffered, then reply (used at shutdown).
    Drain(RpcReplyPort<DrainReport>),
    /// Report the sink's counters.
    Status(RpcReplyPort<SinkStatus>),
}

/// The sink's counters (summed over lanes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkStatus {
    /// Records waiting in memory.
    pub buffered: usize,
    /// Records written since start.
    pub written: u64,
    /// Records dropped since start.
    pub dropped: u64,
    /// Records in batches that writers are writing now.
    pub in_flight: usize,
    /// True while any writer's last attempt failed.
    pub failing: bool,
}

/// A writer's report on one batch, handing the writer back.
#[derive(Debug)]
pub struct WriteDone {
    lane: usize,
    seq: u64,
    writer: Box<dyn ResultWriter>,
    batch: Vec<Record>,
    result: std::io::Result<()>,
}

#[derive(Debug)]
struct Lane {
    name: String,
    buffer: ResultBuffer<Record>,
    /// `None` while a batch is being written.
    writer: Option<Box<dyn ResultWriter>>,
    write_seq: u64,
    written: u64,
    lost_at_drain: u64,
    failing: bool,
    /// Records in the batch the writer has now (0 when idle).
    in_flight: usize,
    /// Since when this lane has been dropping records (its buffer full), and how many so far.
    dropping: Option<(std::time::Instant, u64)>,
    last_drop_report: Option<std::time::Instant>,
}

/// The sink's state.
#[derive(Debug)]
pub struct SinkState {
    lanes: Vec<Lane>,
    state: Arc<NodeState>,
    notify: Option<Link<NotifyMsg>>,
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
        let lanes = args
            .writers
            .into_iter()
            .map(|w| Lane {
                name: w.describe(),
                buffer: ResultBuffer::new(args.buffer),
                writer: Some(w),
                write_seq: 0,
                written: 0,
                lost_at_drain: 0,
                failing: false,
                in_flight: 0,
                dropping: None,
                last_drop_report: None,
            })
            .collect();
        Ok(SinkState {
            lanes,
            state: args.state,
            notify: args.notify,
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
                state.state.record_result(&result);
                state.push(&myself, Record::Result(result));
            }
            SinkMsg::Event(event) => {
                state.state.record_event(&event);
                if let Some(n) = &state.notify {
                    n.cast(NotifyMsg::Event(Box::new(event.clone())));
                }
                state.push(&myself, Record::Event(event));
            }
            SinkMsg::FlushTick => {
                for lane in &mut state.lanes {
                    let dropped = lane.buffer.take_dropped_report();
                    state.state.add_dropped(dropped);
                    lane.report_drops(dropped);
                }
                for i in 0..state.lanes.len() {
                    state.flush(&myself, i);
                }
                let backlog = state.lanes.iter().map(|l| l.buffer.len()).max();
                state.state.set_buffered(backlog.unwrap_or(0));
            }
            SinkMsg::Written(done) => state.written(&myself, *done),
            SinkMsg::Drain(reply) => {
                state.draining.push(reply);
                for i in 0..state.lanes.len() {
                    state.flush(&myself, i);
                }
                state.maybe_finish_drain();
            }
            SinkMsg::Status(reply) => {
                let _ = reply.send(SinkStatus {
                    buffered: state.lanes.iter().map(|l| l.buffer.len()).sum(),
                    written: state.lanes.iter().map(|l| l.written).sum(),
                    dropped: state
                        .lanes
                        .iter()
                        .map(|l| l.buffer.dropped_total() + l.lost_at_drain)
                        .sum(),
                    in_flight: state.lanes.iter().map(|l| l.in_flight).sum(),
                    failing: state.lanes.iter().any(|l| l.failing),
                });
            }
        }
        Ok(())
    }
}

impl Lane {
    /// Logs when the lane starts dropping records, every `DROP_REPORT_EVERY` while it goes
    /// on, and when its buffer has room again: state changes, not one line per flush.
    fn report_drops(&mut self, dropped: u64) {
        let now = std::time::Instant::now();
        let (total, full) = (self.buffer.dropped_total(), self.buffer.is_full());
        match self.dropping {
            None if dropped == 0 => {}
            None => {
                self.dropping = Some((now, dropped));
                self.last_drop_report = Some(now);
                tracing::warn!(sink = %self.name, dropped, total, "results dropped: the buffer is full");
            }
            Some((since, so_far)) if dropped > 0 || full => {
                self.dropping = Some((since, so_far + dropped));
                let due = self
                    .last_drop_report
                    .is_none_or(|t| now.duration_since(t) >= DROP_REPORT_EVERY);
                if due && dropped > 0 {
                    self.last_drop_report = Some(now);
                    tracing::warn!(sink = %self.name, dropped = so_far + dropped, total, "results still dropped: the buffer is full");
                }
            }
            Some((since, so_far)) => {
                self.dropping = None;
                tracing::info!(sink = %self.name, dropped = so_far, for_ms = now.duration_since(since).as_millis() as u64, total, "results no longer dropped: the buffer has room again");
            }
        }
    }
}

impl SinkState {
    fn push(&mut self, myself: &ActorRef<SinkMsg>, record: Record) {
        let last = self.lanes.len().saturating_sub(1);
        let mut record = Some(record);
        for i in 0..self.lanes.len() {
            let r = if i == last {
                record.take()
            } else {
                record.clone()
            };
            let Some(r) = r else { break };
            self.lanes[i].buffer.push(r);
            if self.lanes[i].buffer.len() >= BATCH_MAX {
                self.flush(myself, i);
            }
        }
    }

    /// Hands the oldest batch of lane `i` to its writer unless it is busy or has nothing.
    fn flush(&mut self, myself: &ActorRef<SinkMsg>, i: usize) {
        let lane = &mut self.lanes[i];
        if lane.buffer.is_empty() {
            return;
        }
        let Some(mut writer) = lane.writer.take() else {
            return;
        };
        lane.write_seq += 1;
        let seq = lane.write_seq;
        let batch = lane.buffer.take(BATCH_MAX);
        lane.in_flight = batch.len();
        let me = myself.clone();
        tokio::task::spawn_blocking(move || {
            let result = writer.write_batch(&batch);
            let _ = me.cast(SinkMsg::Written(Box::new(WriteDone {
                lane: i,
                seq,
                writer,
                batch,
                result,
            })));
        });
    }

    fn written(&mut self, myself: &ActorRef<SinkMsg>, done: WriteDone) {
        let draining = !self.draining.is_empty();
        let lane = &mut self.lanes[done.lane];
        debug_assert_eq!(done.seq, lane.write_seq);
        lane.writer = Some(done.writer);
        lane.in_flight = 0;
        match done.result {
            Ok(()) => {
                lane.written += done.batch.len() as u64;
                if lane.failing {
                    lane.failing = false;
                    tracing::info!(sink = %lane.name, waiting = lane.buffer.len(), "results writer recovered");
                }
                if draining || lane.buffer.len() >= BATCH_MAX {
                    self.flush(myself, done.lane);
                }
            }
            Err(err) => {
                if !lane.failing {
                    lane.failing = true;
                    tracing::error!(sink = %lane.name, error = %err, keeping = lane.buffer.len() + done.batch.len(), "results writer failing; holding results in memory and retrying every flush interval");
                }
                if !draining {
                    lane.buffer.requeue_front(done.batch);
                } else {
                    // Shutting down: one attempt per batch, then report what could not be written.
                    lane.lost_at_drain += (done.batch.len() + lane.buffer.len()) as u64;
                    lane.buffer.take(usize::MAX);
                }
            }
        }
        self.maybe_finish_drain();
    }

    fn maybe_finish_drain(&mut self) {
        if self.draining.is_empty()
            || self
                .lanes
                .iter()
                .any(|l| l.writer.is_none() || !l.buffer.is_empty())
        {
            return;
        }
        let report = DrainReport {
            written: self.lanes.iter().map(|l| l.written).sum(),
            dropped: self
                .lanes
                .iter()
                .map(|l| l.buffer.dropped_total() + l.lost_at_drain)
                .sum(),
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
    use std::sync::Mutex;
    use std::time::SystemTime;

    #[derive(Debug, Clone, Default)]
    struct MemWriter {
        lines: Arc<Mutex<Vec<String>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl ResultWriter for MemWriter {
        fn write_batch(&mut self, batch: &[Record]) -> std::io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(std::io::Error::other("disk full"));
            }
            let mut lines = self.lines.lock().unwrap();
            lines.extend(batch.iter().map(|r| match r {
                Record::Result(r) => r.target.id.to_string(),
                Record::Event(e) => format!("event {}", e.target.id),
            }));
            Ok(())
        }

        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn result(i: usize) -> ProbeResult {
        let id = std::net::Ipv4Addr::from(0x7f00_0000 + i as u32).to_string();
        ProbeResult {
            ts: SystemTime::now(),
            node: NodeName::new("n1").unwrap(),
            target: crate::testkit::target(&id, Duration::from_secs(10), Duration::from_secs(1)),
            epoch: 1,
            outcome: ProbeOutcome::Up {
                rtt: Duration::from_millis(1),
            },
            elapsed: Duration::from_millis(1),
            echo: None,
            ssh: None,
        }
    }

    async fn spawn(writers: Vec<MemWriter>, buffer: usize) -> ActorRef<SinkMsg> {
        let args = SinkArgs {
            writers: writers
                .into_iter()
                .map(|w| Box::new(w) as Box<dyn ResultWriter>)
                .collect(),
            buffer,
            flush_interval: Duration::from_secs(1),
            state: Arc::new(NodeState::default()),
            notify: None,
        };
        Actor::spawn(None, ResultSink, args).await.unwrap().0
    }

    #[tokio::test]
    async fn drain_writes_everything_in_order() {
        let w = MemWriter::default();
        let sink = spawn(vec![w.clone()], 100_000).await;
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
    async fn a_failing_writer_keeps_a_bounded_buffer_recovers_and_does_not_hold_up_the_others() {
        let (failing, healthy) = (MemWriter::default(), MemWriter::default());
        *failing.fail.lock().unwrap() = true;
        let sink = spawn(vec![failing.clone(), healthy.clone()], 100).await;
        for i in 0..150 {
            sink.cast(SinkMsg::Record(result(i))).unwrap();
        }
        sink.cast(SinkMsg::FlushTick).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let st = ractor::call_t!(sink, SinkMsg::Status, 1_000).unwrap();
            if st.failing && healthy.lines.lock().unwrap().len() == 100 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "writer never reported failing"
            );
            tokio::task::yield_now().await;
        }
        *failing.fail.lock().unwrap() = false;
        ractor::call_t!(sink, SinkMsg::Drain, 10_000).unwrap();
        // 150 offered into room for 100: the 50 oldest dropped (and counted) in each lane.
        for w in [&failing, &healthy] {
            let lines = w.lines.lock().unwrap();
            assert_eq!(lines.len(), 100);
            assert_eq!(lines.last().unwrap(), &result(149).target.id.to_string());
        }
        let st = ractor::call_t!(sink, SinkMsg::Status, 1_000).unwrap();
        assert_eq!((st.written, st.dropped, st.failing), (200, 100, false));
    }
}
