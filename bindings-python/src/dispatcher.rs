//! The blocking client's dispatcher: one Python thread per client (started by
//! `event_bus.EventBusClient`) drains a channel of handler [`Job`]s, up to [`BATCH`] per GIL
//! acquisition, and runs the plain-callable handlers there. An in-order batch
//! ([`Job::Batch`]) runs under one acquisition, its handlers one after another.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors;
use crate::handler::{call_handler, failure, run_call, Job, Runner, BATCH};

/// The queue of handler calls that the blocking client's dispatcher thread runs.
pub struct Dispatcher {
    tx: mpsc::Sender<Job>,
    rx: Mutex<mpsc::Receiver<Job>>,
    stop: AtomicBool,
}

impl Runner for Dispatcher {
    const LOST: &'static str = "dispatcher stopped";

    fn send(self: &Arc<Self>, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

impl Dispatcher {
    pub fn new() -> Arc<Self> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Dispatcher {
            tx,
            rx: Mutex::new(rx),
            stop: AtomicBool::new(false),
        })
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.stop.store(false, Ordering::SeqCst);
    }

    /// Body of the dispatcher thread: runs until `request_stop()` and the queue is empty.
    pub fn run(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            let batch = py.detach(|| self.next_batch());
            if batch.is_empty() {
                if self.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
            for job in batch {
                errors::guard_unraisable(py, || run_job(py, job));
            }
        }
    }

    /// Wait (detached, up to 100 ms) for the next job and take up to [`BATCH`] of those
    /// queued; empty when none came.
    fn next_batch(&self) -> Vec<Job> {
        while crate::host::exiting() {
            // Interpreter finalizing: re-attaching would end this thread with
            // pthread_exit through Rust frames (an abort). Park until the process ends.
            std::thread::sleep(Duration::from_secs(3600));
        }
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let next = match rx.try_recv() {
            Ok(j) => Ok(j),
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {
                // Nothing to run: hand this thread's allocator cache back before
                // waiting, as the runtime's workers do when they park.
                event_bus::runtime::thread_idle();
                rx.recv_timeout(Duration::from_millis(100))
            }
        };
        match next {
            Ok(j) => {
                let mut v = Vec::with_capacity(16);
                v.push(j);
                while v.len() < BATCH {
                    match rx.try_recv() {
                        Ok(j) => v.push(j),
                        Err(_) => break,
                    }
                }
                v
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => Vec::new(),
        }
    }
}

fn run_job(py: Python<'_>, job: Job) {
    match job {
        Job::Call {
            handler,
            event,
            reply,
        } => {
            if let Some(r) = run_call(py, &handler, event, &reply) {
                let _ = reply.send(r.map(|_| ()).map_err(|e| failure(py, &e)));
            }
        }
        Job::Batch {
            handler,
            events,
            outcomes,
        } => {
            for (i, event) in events.into_iter().enumerate() {
                if !outcomes.claim(i) {
                    break; // given up by the core, with the rest (timeout, or unsubscribed)
                }
                let r = call_handler(py, &handler, event).map(|_| ());
                outcomes.report(i, r.map_err(|e| failure(py, &e)));
            }
            outcomes.flush();
        }
        // A blocking handler cannot be stopped: it runs to its end (its late outcome counts).
        Job::Resolve { .. } | Job::Cancel { .. } => {}
    }
}
