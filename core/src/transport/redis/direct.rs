//! The publisher connection's TCP socket, shared by the redis crate's connection and a lone
//! publish written from its caller's own thread.
//!
//! A lone awaited publish through the redis crate's multiplexed connection costs two thread
//! crossings before Redis even sees it: the caller hands the command to the connection's driver
//! task, which a worker of the runtime must wake up for, and that worker's scheduler wakes a
//! second, searching worker. Here the caller writes the PUBLISH on the socket itself
//! ([`DirectLink::try_publish`], one non-blocking `write` from whichever thread calls), and only
//! the reply wakes the runtime: the driver task, which reads the socket through [`DirectStream`],
//! finds the reply, takes it out of the bytes it hands to the redis crate and answers the caller.
//!
//! That is only sound while the caller's reply is the next one on the connection, so a caller
//! writes only when every command the redis crate wrote has been answered (the requests written
//! and the replies read are counted here, from the bytes themselves, so no sender of the
//! connection can be forgotten) and no other direct publish is unanswered; the reply is then the
//! next reply frame read. Anything else (bursts, pipelines, heartbeats, a PING of the health
//! check) goes through the redis crate as before. TLS and Unix-socket connections keep the redis
//! crate's own stream: there the publish is handed to the driver task.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use redis::{RedisResult, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The reply of a direct publish, or why there is none.
pub(super) type DirectReply = oneshot::Receiver<RedisResult<Value>>;

/// Commands bigger than this are never written directly (a partial write would leave the rest
/// to flush from the runtime); a PUBLISH of one event is far smaller.
const MAX_DIRECT: usize = 64 * 1024;

/// One publisher connection's socket, shared (see the module docs).
pub(crate) struct DirectLink {
    write: Mutex<Writer>,
    read: Mutex<Reader>,
    /// Reply frames read (push frames are not replies).
    replies: AtomicU64,
    /// The unanswered direct publish: it is answered by the next reply frame.
    pending: Mutex<Option<oneshot::Sender<RedisResult<Value>>>>,
    /// Whether `pending` holds one (read for every reply frame without taking the lock).
    has_pending: AtomicBool,
    /// The byte stream stopped making sense, or the connection ended: no more direct writes.
    off: AtomicBool,
    /// A direct write stopped halfway: the stream is cut, so the connection fails its next
    /// write and is replaced.
    broken: AtomicBool,
}

struct Writer {
    half: OwnedWriteHalf,
    /// Counts the requests in what was written.
    out: OutScan,
}

struct Reader {
    half: OwnedReadHalf,
    /// The bytes of a reply frame read only in part (a copy; those of the redis crate's frames
    /// were handed over too), and whether it answers the direct publish.
    carry: Vec<u8>,
    carry_direct: bool,
}

impl DirectLink {
    /// Share `stream`: the returned [`DirectStream`] is what the redis crate's connection reads
    /// and writes.
    pub(super) fn new(stream: TcpStream) -> (Arc<DirectLink>, DirectStream) {
        let (r, w) = stream.into_split();
        let link = Arc::new(DirectLink {
            write: Mutex::new(Writer {
                half: w,
                out: OutScan::default(),
            }),
            read: Mutex::new(Reader {
                half: r,
                carry: Vec::new(),
                carry_direct: false,
            }),
            replies: AtomicU64::new(0),
            pending: Mutex::new(None),
            has_pending: AtomicBool::new(false),
            off: AtomicBool::new(false),
            broken: AtomicBool::new(false),
        });
        (link.clone(), DirectStream(link))
    }

    /// Write the packed command `cmd` (one PUBLISH) on the socket now, from the calling
    /// thread, if the connection has nothing else in flight; its reply arrives on the returned
    /// receiver. `None`: nothing was written (busy, or the socket would block): send it through
    /// the redis crate.
    pub(super) fn try_publish(&self, cmd: &[u8]) -> Option<DirectReply> {
        if cmd.len() > MAX_DIRECT || self.off.load(Acquire) {
            return None;
        }
        let mut w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        // Every request written so far is answered, none is half written: the next reply frame
        // is this one's. (Requests written after this one, while the lock is held or later,
        // are answered after it.)
        if !w.out.at_boundary() || w.out.requests != self.replies.load(Acquire) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_some() {
                return None;
            }
            // Set before writing: the reply may be read before `try_write` returns.
            *pending = Some(tx);
            self.has_pending.store(true, Release);
        }
        match w.half.try_write(cmd) {
            Ok(n) if n == cmd.len() => {
                w.out.requests += 1;
                Some(rx)
            }
            Ok(n) if n > 0 => {
                // Part of it is on the wire; nothing else may be written before the rest, and
                // it cannot wait for a worker (the caller expects it written). Finish with
                // blocking writes: with nothing in flight the socket buffer had room for most
                // of it, so this is short.
                w.out.requests += 1;
                let rest = &cmd[n..];
                if write_all_now(&w.half, rest).is_err() {
                    self.broken.store(true, Release);
                    drop(w);
                    self.end("a direct publish could not be written whole");
                }
                Some(rx)
            }
            _ => {
                // Nothing written: not pending after all.
                self.take_pending();
                None
            }
        }
    }

    /// The connection ended (or its bytes stopped making sense): the direct publish waiting for
    /// its reply gets a connection error (*outcome unknown*), and none is written from now.
    fn end(&self, why: &str) {
        self.off.store(true, Release);
        if let Some(tx) = self.take_pending() {
            let _ = tx.send(Err(redis::RedisError::from(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                why.to_string(),
            ))));
        }
    }

    fn take_pending(&self) -> Option<oneshot::Sender<RedisResult<Value>>> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.has_pending.store(false, Release);
        pending.take()
    }

    /// Hand the reply frame `frame` to the direct publish waiting for it.
    fn answer(&self, frame: &[u8]) {
        if let Some(tx) = self.take_pending() {
            let _ = tx.send(redis::parse_redis_value(frame));
        }
    }

    /// Whether the reply frame starting now answers the direct publish: one is waiting and
    /// every earlier request has its reply (push frames are never replies).
    fn next_is_direct(&self, first: u8) -> bool {
        first != b'>' && self.has_pending.load(Acquire)
    }

    /// Sort the bytes just read (`buf`): the direct publish's reply is taken out and answered,
    /// the rest is moved to the front for the redis crate. Returns how many bytes are left.
    fn sort(&self, r: &mut Reader, buf: &mut [u8]) -> usize {
        let mut replies = 0;
        let out = self.sort_frames(r, buf, &mut replies);
        // Counted once per read: a caller that sees fewer replies than requests meanwhile only
        // sends its publish through the redis crate.
        self.replies.fetch_add(replies, AcqRel);
        out
    }

    fn sort_frames(&self, r: &mut Reader, buf: &mut [u8], replies: &mut u64) -> usize {
        let (mut i, mut out) = (0, 0);
        let n = buf.len();
        while i < n {
            if r.carry.is_empty() {
                let first = buf[i];
                let direct = self.next_is_direct(first);
                match frame_len(&buf[i..]) {
                    Ok(Some(len)) => {
                        if direct {
                            self.answer(&buf[i..i + len]);
                        } else {
                            buf.copy_within(i..i + len, out);
                            out += len;
                        }
                        if first != b'>' {
                            *replies += 1;
                        }
                        i += len;
                    }
                    Ok(None) => {
                        r.carry.extend_from_slice(&buf[i..]);
                        r.carry_direct = direct;
                        if !direct {
                            buf.copy_within(i..n, out);
                            out += n - i;
                        }
                        i = n;
                    }
                    Err(()) => return self.give_up(r, buf, i, out),
                }
            } else {
                let before = r.carry.len();
                r.carry.extend_from_slice(&buf[i..]);
                match frame_len(&r.carry) {
                    Ok(Some(len)) => {
                        let used = len - before;
                        if r.carry_direct {
                            self.answer(&r.carry[..len]);
                        } else {
                            buf.copy_within(i..i + used, out);
                            out += used;
                        }
                        if r.carry[0] != b'>' {
                            *replies += 1;
                        }
                        r.carry.clear();
                        i += used;
                    }
                    Ok(None) => {
                        if !r.carry_direct {
                            buf.copy_within(i..n, out);
                            out += n - i;
                        }
                        i = n;
                    }
                    Err(()) => return self.give_up(r, buf, i, out),
                }
            }
        }
        out
    }

    /// Bytes that are not RESP: stop writing directly and leave everything from `i` on to the
    /// redis crate (which reports the protocol error and drops the connection).
    fn give_up(&self, r: &mut Reader, buf: &mut [u8], i: usize, out: usize) -> usize {
        self.end("the server sent bytes that are not RESP");
        r.carry.clear();
        let n = buf.len();
        buf.copy_within(i..n, out);
        out + n - i
    }
}

/// Write all of `bytes` on `half` from the calling thread, waiting (at most a second) while
/// the socket's buffer is full.
fn write_all_now(half: &OwnedWriteHalf, mut bytes: &[u8]) -> io::Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !bytes.is_empty() {
        match half.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= until {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The stream the redis crate's connection reads and writes: the shared socket, minus the
/// replies of direct publishes.
pub(crate) struct DirectStream(Arc<DirectLink>);

impl Drop for DirectStream {
    fn drop(&mut self) {
        self.0.end("the connection closed");
    }
}

impl AsyncRead for DirectStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let link = &self.0;
        let mut r = link.read.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let start = buf.filled().len();
            match Pin::new(&mut r.half).poll_read(cx, buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    link.end("the connection failed");
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {}
            }
            let end = buf.filled().len();
            if end == start {
                link.end("the connection closed");
                return Poll::Ready(Ok(())); // end of stream
            }
            let kept = {
                let reader = &mut *r;
                link.sort(reader, &mut buf.filled_mut()[start..end])
            };
            buf.set_filled(start + kept);
            if kept > 0 {
                return Poll::Ready(Ok(()));
            }
            // Only a direct publish's reply: read on (or register for more).
        }
    }
}

impl AsyncWrite for DirectStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.0.broken.load(Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "a publish written directly was cut off",
            )));
        }
        let mut w = self.0.write.lock().unwrap_or_else(|p| p.into_inner());
        let res = Pin::new(&mut w.half).poll_write(cx, bytes);
        if let Poll::Ready(Ok(n)) = res {
            if !w.out.feed(&bytes[..n]) {
                drop(w);
                self.0
                    .end("the client wrote bytes that are not RESP commands");
            }
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.0.write.lock().unwrap_or_else(|p| p.into_inner());
        Pin::new(&mut w.half).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.0.write.lock().unwrap_or_else(|p| p.into_inner());
        Pin::new(&mut w.half).poll_shutdown(cx)
    }
}

/// Counts the requests in the bytes written: RESP arrays of bulk strings, as the redis crate
/// packs every command.
#[derive(Default)]
struct OutScan {
    /// Requests whose first byte was written.
    requests: u64,
    state: Out,
    /// Bulk strings left in the current request.
    args_left: u64,
}

#[derive(Default, Clone, Copy)]
enum Out {
    /// Between requests.
    #[default]
    Request,
    /// In a `*N` or `$N` header: the number so far.
    Count { array: bool, n: u64, cr: bool },
    /// Expecting the `$` of the next argument.
    Arg,
    /// In an argument's bytes, plus its CRLF.
    Body(u64),
}

impl OutScan {
    fn at_boundary(&self) -> bool {
        matches!(self.state, Out::Request)
    }

    /// Account for `bytes`; false if they are not RESP commands.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while let Some(&b) = bytes.first() {
            match self.state {
                Out::Request => {
                    if b != b'*' {
                        return false;
                    }
                    self.requests += 1;
                    self.state = Out::Count {
                        array: true,
                        n: 0,
                        cr: false,
                    };
                    bytes = &bytes[1..];
                }
                Out::Arg => {
                    if b != b'$' {
                        return false;
                    }
                    self.state = Out::Count {
                        array: false,
                        n: 0,
                        cr: false,
                    };
                    bytes = &bytes[1..];
                }
                Out::Count { array, n, cr } => {
                    bytes = &bytes[1..];
                    self.state = match (b, cr) {
                        (b'0'..=b'9', false) => Out::Count {
                            array,
                            n: n * 10 + (b - b'0') as u64,
                            cr,
                        },
                        (b'\r', false) => Out::Count { array, n, cr: true },
                        (b'\n', true) if array => {
                            self.args_left = n;
                            if n == 0 {
                                Out::Request
                            } else {
                                Out::Arg
                            }
                        }
                        (b'\n', true) => Out::Body(n + 2),
                        _ => return false,
                    };
                }
                Out::Body(left) => {
                    let take = (bytes.len() as u64).min(left);
                    bytes = &bytes[take as usize..];
                    if take < left {
                        self.state = Out::Body(left - take);
                    } else {
                        self.args_left -= 1;
                        self.state = if self.args_left == 0 {
                            Out::Request
                        } else {
                            Out::Arg
                        };
                    }
                }
            }
        }
        true
    }
}

/// The length of the RESP2/RESP3 frame at the start of `b`: `Ok(None)` while it is incomplete,
/// `Err` for bytes that are not RESP.
fn frame_len(b: &[u8]) -> Result<Option<usize>, ()> {
    let mut pos = 0;
    Ok(skip(b, &mut pos)?.map(|()| pos))
}

/// Skip one frame from `pos`.
fn skip(b: &[u8], pos: &mut usize) -> Result<Option<()>, ()> {
    let Some(&kind) = b.get(*pos) else {
        return Ok(None);
    };
    let Some(nl) = b[*pos..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &b[*pos + 1..*pos + nl];
    *pos += nl + 2;
    let count = || -> Result<i64, ()> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(())
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Some(())),
        b'$' | b'!' | b'=' => {
            let n = count()?;
            if n < 0 {
                return Ok(Some(()));
            }
            let end = *pos + n as usize + 2;
            if b.len() < end {
                return Ok(None);
            }
            *pos = end;
            Ok(Some(()))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = count()?;
            let items = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            for _ in 0..items.max(0) {
                if skip(b, pos)?.is_none() {
                    return Ok(None);
                }
            }
            if kind == b'|' {
                // An attribute comes before the frame it annotates.
                return skip(b, pos);
            }
            Ok(Some(()))
        }
        _ => Err(()),
    }
}

/// A publish written directly: resolves to Redis's reply, or to a connection error when the
/// connection ended first.
pub(super) async fn reply(rx: DirectReply) -> RedisResult<Value> {
    rx.await.unwrap_or_else(|_| {
        Err(redis::RedisError::from(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the connection closed",
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_measured_whole_or_not_at_all() {
        for (bytes, want) in [
            (&b":12\r\n"[..], Some(5)),
            (b":12\r", None),
            (b"-ERR no\r\n:1\r\n", Some(9)),
            (b"$3\r\nabc\r\n", Some(9)),
            (b"$3\r\nab", None),
            (b"$-1\r\n", Some(5)),
            (b"*2\r\n:1\r\n$1\r\nx\r\n", Some(15)),
            (b"*2\r\n:1\r\n", None),
            (b"%1\r\n+a\r\n:1\r\n", Some(12)),
            (b">2\r\n+m\r\n+x\r\n", Some(12)),
            (b"", None),
        ] {
            assert_eq!(
                frame_len(bytes),
                Ok(want),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(frame_len(b"?x\r\n"), Err(()));
    }

    #[test]
    fn requests_are_counted_in_any_split() {
        let cmds =
            b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$12\r\nhello\r\nworld\r\n*1\r\n$4\r\nPING\r\n";
        for cut in 0..cmds.len() {
            let mut s = OutScan::default();
            assert!(s.feed(&cmds[..cut]));
            assert!(s.feed(&cmds[cut..]));
            assert_eq!(s.requests, 2, "cut at {cut}");
            assert!(s.at_boundary());
        }
        let mut s = OutScan::default();
        assert!(s.feed(&cmds[..20]));
        assert!(!s.at_boundary(), "half a request written");
        assert!(
            !OutScan::default().feed(b"PING\r\n"),
            "inline commands are not counted"
        );
    }
}
