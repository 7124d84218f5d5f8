//! Helpers for the actor unit tests: a context with a scripted probe, and an in-memory sink.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::Semaphore;

use crate::fault::FaultInjection;
use crate::model::{Host, NodeName, ProbeKind, ProbeResult, Record, TargetSpec};
use crate::probe::fake::FakeProbe;
use crate::probe::{ProbeContext, ProbeEngine};
use crate::sink::{ResultSink, ResultWriter, SinkArgs, SinkMsg};
use crate::supervisor::TreeRefs;

/// Keeps every written result in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemWriter {
    pub(crate) results: Arc<Mutex<Vec<ProbeResult>>>,
    pub(crate) events: Arc<Mutex<Vec<crate::model::StateEvent>>>,
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

/// A target probed by the fake probe (the kind is only a label here).
pub(crate) fn target(id: &str, interval: Duration, timeout: Duration) -> Arc<TargetSpec> {
    Arc::new(TargetSpec::new(
        Host::parse(id).unwrap(),
        ProbeKind::Icmp,
        None,
        interval,
        timeout,
        Arc::default(),
    ))
}

/// A context whose engine is `fake`, with a sink writing into the returned writer.
pub(crate) async fn context(
    fake: FakeProbe,
    max_in_flight: usize,
    faults: FaultInjection,
) -> (Arc<ProbeContext>, MemWriter, ActorRef<SinkMsg>) {
    let refs = Arc::new(TreeRefs::default());
    let writer = MemWriter::default();
    let args = SinkArgs {
        writers: vec![Box::new(writer.clone())],
        buffer: 1_000_000,
        flush_interval: Duration::from_millis(100),
        state: refs.state.clone(),
    };
    let (sink, _) = Actor::spawn(None, ResultSink, args).await.unwrap();
    refs.sink.set(Some(sink.clone()));
    let mut engine = ProbeEngine::default();
    engine.fake = Some(fake);
    let ctx = Arc::new(ProbeContext {
        node: NodeName::new("test").unwrap(),
        engine,
        permits: Arc::new(Semaphore::new(max_in_flight)),
        refs,
        epoch: AtomicU64::new(7),
        overruns: AtomicU64::new(0),
        faults,
    });
    (ctx, writer, sink)
}

/// Drains the sink and returns everything written so far.
pub(crate) async fn written(sink: &ActorRef<SinkMsg>, w: &MemWriter) -> Vec<ProbeResult> {
    ractor::call_t!(sink, SinkMsg::Drain, 60_000).unwrap();
    w.results.lock().unwrap().clone()
}
