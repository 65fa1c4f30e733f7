//! `wsgi.file_wrapper`: a real file goes out through `sendfile(2)` with a Content-Length, on
//! TCP and unix sockets, mixed with ordinary responses on one keep-alive connection; a
//! Content-Length the app declares is honoured; file-likes without a descriptor are read in
//! blocks. The bodies are numbered records, so a byte out of place or a zero where the file
//! should be fails the comparison.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::{Conn, get, server};

/// The app's file: `n` records "%015d\n", record i saying i.
fn records(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{i:015}\n").into_bytes())
        .collect()
}

fn files() -> support::Server {
    server("files:application")
        .args(&["--workers", "1", "--threads", "2", "--log-level", "debug"])
        .start()
}

fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

#[test]
fn a_real_file_is_sent_by_sendfile_with_its_length() {
    let s = files();
    // 1.6 MB: more than one placeholder frame.
    let r = get(s.addr(), "/file?records=100000");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1600000"));
    assert!(!r.chunked);
    assert!(r.body == records(100_000), "the file arrived altered");
    s.wait_log(&["file body sent with sendfile(2)", "bytes=1600000"]);

    // From the position the app left the file at.
    let r = get(s.addr(), "/file?records=10&skip=95");
    assert_eq!(r.header("content-length"), Some("65"));
    assert_eq!(r.body, records(10)[95..]);
}

#[test]
fn file_bodies_and_plain_bodies_share_a_pipelined_connection() {
    let s = files();
    let mut c = Conn::open(s.addr());
    let mut raw = request("/file?records=3");
    raw.extend(request("/hello"));
    raw.extend(b"HEAD /file?records=7 HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.extend(request("/file?records=70000&skip=5"));
    raw.extend(request("/bytesio"));
    raw.extend(request("/hello"));
    c.send(&raw);

    assert_eq!(c.read_response(false).body, records(3));
    assert_eq!(c.read_response(false).text(), "hello");
    let head = c.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("112"));
    let big = c.read_response(false);
    assert!(
        big.body == records(70_000)[5..],
        "the second file arrived altered"
    );
    assert_eq!(c.read_response(false).body, records(100));
    assert_eq!(c.read_response(false).text(), "hello");
}

#[test]
fn a_slow_reader_gets_a_large_file_intact() {
    let s = files();
    let mut c = Conn::open(s.addr());
    c.send(&request("/file?records=2000000")); // 32 MB: far more than the socket buffers
    // Let the socket buffers fill so that sendfile meets a full socket, then read in small
    // sips before taking the rest.
    std::thread::sleep(Duration::from_millis(300));
    let r = c.read_response(false);
    assert_eq!(r.header("content-length"), Some("32000000"));
    assert!(
        r.body == records(2_000_000),
        "the large file arrived altered"
    );
    c.send(&request("/hello"));
    assert_eq!(c.read_response(false).text(), "hello");
}

#[test]
fn a_content_length_from_the_app_cuts_the_file() {
    let s = files();
    let mut c = Conn::open(s.addr());
    c.send(&request("/file?records=10&cl=50"));
    let r = c.read_response(false);
    assert_eq!(r.header("content-length"), Some("50"));
    assert_eq!(r.body, records(10)[..50]);
    c.send(&request("/hello"));
    assert_eq!(
        c.read_response(false).text(),
        "hello",
        "the connection stays usable"
    );

    // A Content-Length larger than the file cannot be honoured: the connection is cut.
    let mut c = Conn::open(s.addr());
    c.send(&request("/file?records=10&cl=200"));
    let err = c.try_read_response(false).unwrap_err();
    assert!(err.contains("failed to fill whole buffer"), "{err}");
    assert_eq!(get(s.addr(), "/hello").text(), "hello");
}

#[test]
fn a_file_after_write_goes_out_chunked() {
    let s = files();
    let r = get(s.addr(), "/file?records=5000&write=1");
    assert!(
        r.chunked,
        "the head went out before the file's size was known"
    );
    let mut want = b"prefix:".to_vec();
    want.extend(records(5000));
    assert!(r.body == want, "the chunked file arrived altered");
}

#[test]
fn a_file_removed_from_disk_is_still_sent() {
    let s = files();
    let r = get(s.addr(), "/file?records=100000&unlink=1");
    assert!(r.body == records(100_000));
}

#[test]
fn a_file_that_shrinks_while_sent_cuts_the_connection() {
    let s = files();
    let mut c = Conn::open(s.addr());
    // The app truncates the file to 1 MiB as soon as it has handed it over.
    c.send(&request("/file?records=2000000&shrink=1"));
    let err = c.try_read_response(false).unwrap_err();
    assert!(err.starts_with("body:"), "{err}");
    s.wait_log(&["the file shrank while it was being sent"]);
    assert_eq!(get(s.addr(), "/hello").text(), "hello");
}

#[test]
fn file_likes_without_a_usable_descriptor_are_read() {
    let s = files();
    assert_eq!(get(s.addr(), "/bytesio").body, records(100));
    // /proc files are regular files that report a size of 0: read, not sent as empty.
    let r = get(s.addr(), "/proc");
    assert!(r.text().contains("Name:"), "{}", r.text());
}

#[test]
fn a_file_is_sent_on_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("segue-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let spec = format!("unix:{}", sock.display());
    let s = server("files:application")
        .no_default_listener()
        .args(&["--http", &spec, "--log-level", "debug"])
        .start();
    let mut stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    stream
        .write_all(b"GET /file?records=100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = vec![];
    stream.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    assert!(head.contains("content-length: 1600000"), "{head}");
    assert!(out[split..] == records(100_000), "the file arrived altered");
    s.wait_log(&["file body sent with sendfile(2)", "bytes=1600000"]);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_download_in_progress_survives_a_reload() {
    let s = server("files:application")
        .args(&["--workers", "1", "--reload-strategy", "chain"])
        .start();
    let mut c = Conn::open(s.addr());
    c.send(&request("/file?records=2000000"));
    // The first bytes are here: the response is under way when the reload starts.
    let first = c.read_some(16);
    assert!(first.starts_with(b"HTTP/1.1 200"), "{first:?}");
    s.signal(libc::SIGHUP);
    s.wait_promoted(1);
    std::thread::sleep(Duration::from_millis(1500)); // past the drain's idle grace
    let mut rest = first;
    c.set_read_timeout(Duration::from_secs(30));
    let mut buf = vec![0; 1 << 20];
    let want = records(2_000_000);
    loop {
        let n = c.read_raw(&mut buf);
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&buf[..n]);
        if rest.ends_with(&want[want.len() - 16..]) {
            break;
        }
    }
    let split = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(rest[split..] == want, "the download was cut by the reload");
}
