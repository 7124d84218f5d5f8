//! Work too long for one turn of an async thread: a ring rebuild, a view of the cluster's
//! targets or an assignment reconciled at 100,000 targets take tens to hundreds of
//! milliseconds. Run on a worker of a multi-threaded runtime, [`heavy`] hands the worker's
//! other tasks (heartbeats, probe timers) to another thread first (`block_in_place`), so they
//! are not held up behind it; elsewhere (a single-threaded test runtime) it runs in place.

use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

/// Computations that take longer than this are logged at DEBUG.
const LOG_OVER: Duration = Duration::from_millis(20);

/// Runs `f`, off the async scheduler's path when it can be; `what` names it in the log.
pub fn heavy<R>(what: &'static str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let multi =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    let out = if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    };
    let took = start.elapsed();
    if took > LOG_OVER {
        tracing::debug!(
            what,
            took_ms = took.as_millis() as u64,
            "{what} took {took:?}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(heavy("sum", || 2 + 2), 4);
    }

    #[tokio::test]
    async fn runs_in_place_on_a_current_thread_runtime() {
        assert_eq!(heavy("sum", || 2 + 2), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lets_other_tasks_run_on_a_multi_threaded_runtime() {
        // On a worker, a task spawned from the running one waits in that worker's
        // next-to-run slot, which no other worker takes from: it runs during the computation
        // only if the computation gave the worker up.
        let seen = tokio::spawn(async {
            let (tx, rx) = std::sync::mpsc::channel();
            tokio::spawn(async move {
                let _ = tx.send(());
            });
            heavy("wait", || rx.recv_timeout(Duration::from_secs(2)).is_ok())
        })
        .await
        .unwrap();
        assert!(seen, "the other task did not run during the computation");
    }
}
