//! Helpers for the actor unit tests: a probe context with a scripted probe and an in-memory
//! sink, and a probe actor spawned on it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::{watch, Semaphore};

use crate::fault::FaultInjection;
use crate::link::Link;
use crate::model::{
    Check, Host, NodeName, ProbeKind, ProbeResult, Record, StateEvent, TargetKey, TargetSpec,
};
use crate::probe::actor::{ProbeActor, ProbeArgs, ProbeContext, ProbeMsg};
use crate::probe::engine::ProbeEngine;
use crate::probe::fake::FakeProbe;
use crate::sink::actor::{ResultSink, SinkArgs, SinkMsg};
use crate::sink::writer::ResultWriter;
use crate::state::NodeState;
use crate::view::Ownership;

/// Keeps every written result in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemWriter {
    pub(crate) results: Arc<Mutex<Vec<ProbeResult>>>,
    pub(crate) events: Arc<Mutex<Vec<StateEvent>>>,
}

impl ResultWriter for MemWriter {
    fn write_batch(&mut self, batch: &[Record]) -> std::io::Result<()> {
        for r in batch {
            match r {
                Record::Result(r) => self.results.lock().unwrap().push(r.clone()),
                Record::Event(e) => self.events.lock().unwrap().push(e.clone()),
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Member name `n{i}`.
pub(crate) fn node(i: usize) -> NodeName {
    NodeName::new(&format!("n{i}")).unwrap()
}

/// `m` ICMP target keys, 127.0.0.0, 127.0.0.1, … (up to 2^24).
pub(crate) fn keys(m: usize) -> Vec<TargetKey> {
    (0..m)
        .map(|i| TargetKey {
            probe: ProbeKind::Icmp,
            id: format!("127.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255).into(),
        })
        .collect()
}

/// A target probed by the fake probe (the check kind is only a label here).
pub(crate) fn target(id: &str, interval: Duration, timeout: Duration) -> Arc<TargetSpec> {
    Arc::new(TargetSpec::new(
        Host::parse(id).unwrap(),
        Check::Icmp(crate::model::Echoes::default()),
        interval,
        timeout,
        Arc::default(),
    ))
}

/// A probe context on a fake probe, with a sink writing into memory.
#[derive(Debug)]
pub(crate) struct Harness {
    /// What the probe actors share.
    pub(crate) ctx: Arc<ProbeContext>,
    /// Everything the sink wrote.
    pub(crate) writer: MemWriter,
    /// The sink.
    pub(crate) sink: ActorRef<SinkMsg>,
    /// The ownership the probe actors read (epoch 7 until a probe supervisor publishes).
    pub(crate) ownership: watch::Sender<Ownership>,
}

/// A context whose engine is `fake`, allowing `max_in_flight` probes at once.
pub(crate) async fn context(
    fake: FakeProbe,
    max_in_flight: usize,
    faults: FaultInjection,
) -> Harness {
    let state = Arc::new(NodeState::default());
    let writer = MemWriter::default();
    let args = SinkArgs {
        writers: vec![Box::new(writer.clone())],
        buffer: 1_000_000,
        flush_interval: Duration::from_millis(100),
        state: state.clone(),
        notify: None,
    };
    let (sink, _) = Actor::spawn(None, ResultSink, args).await.unwrap();
    let mut engine = ProbeEngine::default();
    engine.fake = Some(fake);
    let (ownership, rx) = watch::channel(Ownership {
        epoch: 7,
        digest: 0,
    });
    let ctx = Arc::new(ProbeContext {
        node: NodeName::new("test").unwrap(),
        engine,
        permits: Arc::new(Semaphore::new(max_in_flight)),
        sink: Link::to(sink.clone()),
        confirm: None,
        ownership: rx,
        state,
        faults,
    });
    Harness {
        ctx,
        writer,
        sink,
        ownership,
    }
}

impl Harness {
    /// The fake probe's calls so far: target and when.
    pub(crate) fn calls(&self) -> Vec<(String, tokio::time::Instant)> {
        self.ctx.engine.fake.as_ref().unwrap().calls()
    }

    /// Drains the sink and returns everything written so far.
    pub(crate) async fn written(&self) -> Vec<ProbeResult> {
        ractor::call_t!(self.sink, SinkMsg::Drain, 60_000).unwrap();
        self.writer.results.lock().unwrap().clone()
    }

    /// Starts a probe actor for `target`, with no state handed over and no missed slot.
    /// Starts a probe actor of `target`, which runs on this node from now on (as the probe
    /// supervisor records before it starts one).
    pub(crate) async fn spawn_probe(&self, target: Arc<TargetSpec>) -> ActorRef<ProbeMsg> {
        self.ctx.state.add_running(target.key());
        let args = ProbeArgs {
            target,
            ctx: self.ctx.clone(),
            initial: None,
            missed_since: None,
        };
        Actor::spawn(None, ProbeActor, args).await.unwrap().0
    }
}
