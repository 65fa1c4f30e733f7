//! The ceiling of `scripts/bench`: what HTTP alone costs in Rust on this machine.
//!
//! One listener bound once, then `--processes` processes (forked before any runtime or thread
//! exists) that each run a tokio `current_thread` runtime with hyper 1 on it, all accepting from
//! that listener. Each answers what the WSGI app of a `scripts/bench` scenario answers, from
//! memory, so a WSGI server's CPU per request can be set against the HTTP part of it.
//!
//!     ceiling --listen 127.0.0.1:8000 --processes 2 --scenario hello
//!
//! Scenarios (`--scenario`, default `hello`; any path and method get the same answer):
//! - `hello`: 200 `Hello, World!\n` (text/plain), as examples/hello.py (Flask and Django too);
//! - `headers`: 200 `ok\n` with 30 response headers, as examples/many_headers.py;
//! - `post`: reads the whole request body and answers its length in decimal and a newline, as
//!   examples/upload.py;
//! - `file`: 200 with examples/files.py's 256 KiB of bytes, held in memory (the WSGI servers
//!   send a file from the page cache, most with sendfile(2)).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

/// Length of the kernel accept queue: segue's default `--backlog`.
const BACKLOG: i32 = 1024;
/// examples/files.py's file: `bytes(range(256)) * 1024`.
const FILE_SIZE: usize = 256 * 1024;

/// What every request is answered with (see the module comment).
#[derive(Clone, Copy)]
enum Scenario {
    Hello,
    Headers,
    Post,
    File,
}

/// The command line, parsed.
struct Args {
    /// Where to listen; bound once, before the fork.
    listen: SocketAddr,
    /// How many serving processes share the listener.
    processes: usize,
    scenario: Scenario,
}

fn usage(why: &str) -> String {
    format!(
        "ceiling: {why}\nusage: ceiling --listen HOST:PORT [--processes N (default 2)] \
         [--scenario hello|headers|post|file (default hello)]"
    )
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut processes = 2;
    let mut scenario = Scenario::Hello;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(
                    v.parse()
                        .map_err(|e| usage(&format!("--listen {v}: {e}")))?,
                );
            }
            "--processes" => {
                let v = value()?;
                processes = match v.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(usage(&format!("--processes {v}: not a positive integer"))),
                };
            }
            "--scenario" => {
                scenario = match value()?.as_str() {
                    "hello" => Scenario::Hello,
                    "headers" => Scenario::Headers,
                    "post" => Scenario::Post,
                    "file" => Scenario::File,
                    other => return Err(usage(&format!("unknown scenario '{other}'"))),
                };
            }
            "-h" | "--help" => return Err(usage("help")),
            other => return Err(usage(&format!("unknown argument '{other}'"))),
        }
    }
    let listen = listen.ok_or_else(|| usage("--listen is required"))?;
    Ok(Args {
        listen,
        processes,
        scenario,
    })
}

/// The bodies and header values a process answers with, built once.
struct Answers {
    hello: Bytes,
    ok: Bytes,
    file: Bytes,
    /// The 28 `X-Response-Header-NN` headers of the headers scenario (with Content-Type and
    /// Content-Length, 30).
    extra: Vec<(HeaderName, HeaderValue)>,
}

impl Answers {
    fn new() -> Answers {
        let file: Vec<u8> = (0..FILE_SIZE).map(|i| (i % 256) as u8).collect();
        let extra = (0..28)
            .map(|i| {
                let name = HeaderName::try_from(format!("x-response-header-{i:02}"));
                let value = HeaderValue::try_from(format!("value-{i:02}-0123456789abcdef"));
                (
                    name.expect("a valid header name"),
                    value.expect("a valid header value"),
                )
            })
            .collect();
        Answers {
            hello: Bytes::from_static(b"Hello, World!\n"),
            ok: Bytes::from_static(b"ok\n"),
            file: Bytes::from(file),
            extra,
        }
    }
}

fn text(body: Bytes) -> Response<Full<Bytes>> {
    let len = HeaderValue::from(body.len());
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(CONTENT_LENGTH, len);
    resp
}

async fn answer(
    scenario: Scenario,
    answers: &Answers,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    Ok(match scenario {
        Scenario::Hello => text(answers.hello.clone()),
        Scenario::Headers => {
            let mut resp = text(answers.ok.clone());
            let h = resp.headers_mut();
            for (name, value) in &answers.extra {
                h.insert(name.clone(), value.clone());
            }
            resp
        }
        Scenario::Post => {
            // Counted frame by frame: the body is read in full without being gathered.
            let mut body = req.into_body();
            let mut n = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    n += data.len();
                }
            }
            text(Bytes::from(format!("{n}\n")))
        }
        Scenario::File => {
            let mut resp = text(answers.file.clone());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
    })
}

/// One serving process: a current_thread runtime accepting from the shared listener.
fn serve(listener: std::net::TcpListener, scenario: Scenario) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ceiling: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Leaked: it lives as long as the process, and every connection task borrows it.
    let answers: &'static Answers = Box::leak(Box::new(Answers::new()));
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ceiling: cannot register the listener with tokio: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).keep_alive(true);
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                // EMFILE, ECONNABORTED and the like end one connection, not the server.
                Err(_) => continue,
            };
            // Responses are written whole; Nagle would only delay the last segment (as segue).
            let _ = stream.set_nodelay(true);
            let conn = builder.serve_connection(
                TokioIo::new(stream),
                service_fn(move |req| answer(scenario, answers, req)),
            );
            // A connection's error (a client gone mid-request) ends that connection only.
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let listener = match std::net::TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "ceiling: cannot bind {}: {e} (pick a free port)",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    // std listens with a backlog of 128; a second listen(2) on a listening socket resizes it.
    // SAFETY: the fd is the listener's own, open for the duration of the call.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        eprintln!("ceiling: listen: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("ceiling: cannot make the listener non-blocking: {e}");
        return ExitCode::FAILURE;
    }
    let parent = std::process::id();
    for _ in 0..args.processes {
        // SAFETY: no runtime and no thread exist yet (only main runs), so the child inherits no
        // lock held by another thread; it goes on to build its own runtime.
        match unsafe { libc::fork() } {
            -1 => {
                eprintln!("ceiling: fork: {}", std::io::Error::last_os_error());
                return ExitCode::FAILURE;
            }
            0 => {
                // SAFETY: prctl with an integer signal number touches only this process.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
                // The parent may have died before the prctl took effect.
                // SAFETY: getppid has no preconditions.
                if unsafe { libc::getppid() } as u32 != parent {
                    return ExitCode::FAILURE;
                }
                return serve(listener, args.scenario);
            }
            _ => {}
        }
    }
    drop(listener);
    eprintln!(
        "ceiling ready: {} processes on {}",
        args.processes, args.listen
    );
    // The parent only waits: SIGTERM to the process group stops it and the children alike.
    let mut failed = false;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer for the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == -1 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break, // ECHILD: every child is gone
            }
        }
        failed |= !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
