//! The stderr log sink (what the Node face installs) must never panic when stderr cannot take
//! more: a pipe nobody reads, set non-blocking, makes every further write fail with
//! `WouldBlock`. `eprintln!` panics on that error; the sink drops the line instead.
//!
//! The logging runs in a child process (this test binary again, with an environment variable
//! set) whose stderr is such a pipe; the parent checks that the child finished cleanly.

use std::process::{Command, Stdio};

use event_bus::config::LogLevel;
use event_bus::logging::{install_stderr, Logger};

const CHILD: &str = "EVENT_BUS_TEST_LOG_CHILD";

/// In the child: log far more than a pipe holds (64 KiB on Linux), text and JSON.
fn log_a_lot() {
    for json in [false, true] {
        install_stderr(json);
        let log = Logger::new("log-stderr-test", LogLevel::Debug, json);
        let pad = "x".repeat(200);
        for i in 0..2000 {
            log.warn(
                "a line that does not fit",
                &[("i", i.to_string()), ("pad", pad.clone())],
            );
        }
    }
}

#[tokio::test]
async fn the_stderr_sink_survives_a_full_non_blocking_pipe() {
    if std::env::var_os(CHILD).is_some() {
        // stderr is the full pipe: report a panic on stdout, which the parent reads.
        std::panic::set_hook(Box::new(|info| println!("child panicked: {info}")));
        log_a_lot();
        return;
    }
    // Both ends non-blocking (O_NONBLOCK is shared by every copy of the descriptor, so the
    // child's stderr is non-blocking too); the read end stays open and unread, so the pipe
    // fills and stays full.
    let (tx, rx) = tokio::net::unix::pipe::pipe().expect("a pipe");
    let write_end = tx.into_nonblocking_fd().expect("the write end");
    let out = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "the_stderr_sink_survives_a_full_non_blocking_pipe",
            "--exact",
            // The sink writes to the process's stderr either way; --nocapture keeps libtest
            // from swallowing whatever goes through the print macros.
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(write_end))
        .output()
        .expect("the child runs");
    drop(rx);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed ({:?}) logging to a full pipe:\n{stdout}",
        out.status
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}
