//! `fault-proxy`: the test proxy of this crate as a process, for the Node, Python and C suites.
//!
//! ```text
//! fault-proxy --upstream 127.0.0.1:6390 [--listen 127.0.0.1:0] [--control 127.0.0.1:0]
//! ```
//!
//! Prints one line on stdout once both ports listen: `{"listen":<port>,"control":<port>}`.
//! The control port takes one command per line (the language of `FaultProxy::command`:
//! `latency 50 20`, `blackhole :sub`, `reset :pub 100`, `refuse 3000`, `heal`, `conns`, ...)
//! and answers each with one line, `ok ...` or `err <reason>`; `quit` stops the process. It also
//! stops when its stdin closes, so a test that dies does not leave it behind.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use fault_proxy::FaultProxy;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn usage(msg: &str) -> ! {
    eprintln!("fault-proxy: {msg}");
    eprintln!("usage: fault-proxy --upstream HOST:PORT [--listen HOST:PORT] [--control HOST:PORT]");
    std::process::exit(2);
}

fn main() {
    let mut upstream: Option<SocketAddr> = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut control: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> SocketAddr {
            let v = args
                .next()
                .unwrap_or_else(|| usage(&format!("{name} needs HOST:PORT")));
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: {v:?} is not HOST:PORT")))
        };
        match a.as_str() {
            "--upstream" => upstream = Some(value("--upstream")),
            "--listen" => listen = value("--listen"),
            "--control" => control = value("--control"),
            "-h" | "--help" => usage("a TCP proxy that injects faults"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(upstream) = upstream else {
        usage("--upstream is required")
    };
    let proxy = Arc::new(
        FaultProxy::start_on(listen, upstream)
            .unwrap_or_else(|e| usage(&format!("cannot listen on {listen}: {e}"))),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let ctl = tokio::net::TcpListener::bind(control)
            .await
            .unwrap_or_else(|e| usage(&format!("cannot listen on {control}: {e}")));
        let port = ctl.local_addr().expect("a bound address").port();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, r#"{{"listen":{},"control":{port}}}"#, proxy.port());
            let _ = out.flush();
        }
        let (quit_tx, mut quit_rx) = tokio::sync::mpsc::channel::<()>(1);
        let stdin_quit = quit_tx.clone();
        // Stop when stdin closes (the parent is gone or done).
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                sink.clear();
            }
            let _ = stdin_quit.blocking_send(());
        });
        loop {
            tokio::select! {
                _ = quit_rx.recv() => break,
                r = ctl.accept() => {
                    let Ok((sock, _)) = r else { continue };
                    let (proxy, quit) = (proxy.clone(), quit_tx.clone());
                    tokio::spawn(async move {
                        let (r, mut w) = sock.into_split();
                        let mut lines = BufReader::new(r).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line.trim() == "quit" {
                                let _ = w.write_all(b"ok\n").await;
                                let _ = quit.send(()).await;
                                return;
                            }
                            let reply = match proxy.command(&line) {
                                Ok(r) => r,
                                Err(e) => format!("err {e}"),
                            };
                            if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        }
    });
}
