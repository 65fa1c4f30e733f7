//! systemd integration against real peers: Debian's `systemd-socket-activate` for `LISTEN_FDS`,
//! and a `NOTIFY_SOCKET` listener in the test that records every sd_notify message (and the fds
//! sent with `FDSTORE=1`).

#[allow(dead_code)]
#[path = "support/fastcgi.rs"]
mod fcgi;
mod support;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sendfd::RecvWithFd;
use support::{Deploy, EVENT_TIMEOUT, eventually, get, server, server_in};

/// One sd_notify datagram: its text and the fds that came with it.
type Message = (String, Vec<OwnedFd>);

/// A fake service manager's notify socket.
struct Manager {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<Message>>>,
}

impl Manager {
    fn new(name: &str) -> Manager {
        let path = std::env::temp_dir().join(format!("segue-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut fds = [0; 16];
            while let Ok((n, nfds)) = socket.recv_with_fd(&mut buf, &mut fds) {
                // SAFETY: recvmsg created these descriptors for us.
                let owned = fds[..nfds]
                    .iter()
                    .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
                    .collect();
                sink.lock()
                    .unwrap()
                    .push((String::from_utf8_lossy(&buf[..n]).into_owned(), owned));
            }
        });
        Manager { path, messages }
    }

    fn env(&self) -> String {
        self.path.display().to_string()
    }

    fn texts(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Index of the first message containing `needle` at or after `from`.
    fn wait(&self, needle: &str, from: usize) -> usize {
        let mut found = None;
        assert!(
            eventually(EVENT_TIMEOUT, || {
                found = self
                    .texts()
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, t)| t.contains(needle))
                    .map(|(i, _)| i);
                found.is_some()
            }),
            "no sd_notify message with {needle:?}; got {:?}",
            self.texts()
        );
        found.unwrap()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[test]
fn notify_ready_reloading_rollback_and_stopping() {
    let m = Manager::new("lifecycle");
    let deploy = Deploy::new("v1");
    let s = server_in(&deploy.root, "versioned:application")
        .args(&["--workers", "2"])
        .env("NOTIFY_SOCKET", &m.env())
        .start();
    let ready = m.wait("READY=1", 0);
    assert!(
        m.texts()[ready].contains("STATUS=generation 1 serving with 2/2 workers"),
        "{:?}",
        m.texts()
    );

    deploy.version("v2");
    let before = monotonic_usec();
    s.signal(libc::SIGHUP);
    let reloading = m.wait("RELOADING=1", ready + 1);
    let text = &m.texts()[reloading];
    let usec: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        usec >= before && usec < before + 5_000_000,
        "MONOTONIC_USEC={usec}, test clock {before}"
    );
    let promoted = m.wait("READY=1", reloading + 1);
    assert!(
        m.texts()[promoted].contains("generation 2 serving")
            && m.texts()[promoted].contains("reload promoted")
    );

    deploy.version("broken");
    s.signal(libc::SIGHUP);
    let reloading = m.wait("RELOADING=1", promoted + 1);
    let rolled = m.wait("READY=1", reloading + 1);
    assert!(
        m.texts()[rolled].contains("reload rolled back: cannot import"),
        "{:?}",
        m.texts()[rolled]
    );

    s.signal(libc::SIGTERM);
    m.wait("STOPPING=1", rolled + 1);
    // Workers never speak to the service manager: exactly one READY=1 per state change.
    assert_eq!(
        m.texts().iter().filter(|t| t.contains("READY=1")).count(),
        3,
        "{:?}",
        m.texts()
    );
}

#[test]
fn listening_sockets_go_to_the_fd_store() {
    let m = Manager::new("fdstore");
    let s = server("cases:application")
        .env("NOTIFY_SOCKET", &m.env())
        .start();
    let i = m.wait("FDSTORE=1", 0);
    let messages = m.messages.lock().unwrap();
    let (text, fds) = &messages[i];
    assert!(text.contains("FDNAME=segue-listen-0"), "{text}");
    assert_eq!(fds.len(), 1);
    // The stored fd is the very socket segue listens on.
    let addr = socket2::SockRef::from(&fds[0])
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap();
    assert_eq!(addr, s.addr());
    assert!(socket2::SockRef::from(&fds[0]).is_listener().unwrap());
}

#[test]
fn watchdog_pings_only_while_workers_are_healthy() {
    let m = Manager::new("watchdog");
    let _s = server("cases:application")
        .env("NOTIFY_SOCKET", &m.env())
        .env("WATCHDOG_USEC", "400000")
        .start();
    assert!(eventually(EVENT_TIMEOUT, || m
        .texts()
        .iter()
        .filter(|t| *t == "WATCHDOG=1")
        .count()
        >= 3));

    let broken = Manager::new("watchdog-broken");
    let flag = std::env::temp_dir().join(format!("segue-watchdog-flag-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let s = server("flag_broken:application")
        .env("NOTIFY_SOCKET", &broken.env())
        .env("WATCHDOG_USEC", "400000")
        .env("SEGUE_BROKEN_FLAG", flag.to_str().unwrap())
        .start();
    // Serving once, then every import fails: the only slot crash-loops.
    s.break_flagged_app(&flag);
    s.wait_status("a crash-looping slot", |st| {
        st["crash_loops"][0]["slot"] == 0
    });
    let count = |m: &Manager| m.texts().iter().filter(|t| *t == "WATCHDOG=1").count();
    let settled = count(&broken);
    assert!(
        !eventually(Duration::from_millis(1500), || count(&broken) > settled),
        "WATCHDOG=1 while crash-looping"
    );
    let _ = std::fs::remove_file(&flag);
}

#[test]
fn an_app_that_does_not_boot_at_first_start_is_never_ready_and_says_why() {
    let m = Manager::new("boot-failure");
    let mut s = server("nosuchmodule:app")
        .env("NOTIFY_SOCKET", &m.env())
        .exits()
        .start();
    let status = s.wait_exit(EVENT_TIMEOUT);
    assert_eq!(status.and_then(|st| st.code()), Some(3), "{}", s.log.all());
    let i = m.wait("STOPPING=1", 0);
    let texts = m.texts();
    assert!(
        texts[i]
            .contains("STATUS=segue exits: the app did not boot: cannot import 'nosuchmodule:app'"),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t.contains("READY=1")), "{texts:?}");
}

#[test]
fn slow_boot_extends_the_start_timeout_before_ready() {
    let m = Manager::new("extend");
    let deploy = Deploy::new("slow:2.5");
    let _s = server_in(&deploy.root, "versioned:application")
        .env("NOTIFY_SOCKET", &m.env())
        .start();
    let ready = m.wait("READY=1", 0);
    assert!(
        m.texts()[..ready]
            .iter()
            .any(|t| t == "EXTEND_TIMEOUT_USEC=5000000"),
        "{:?}",
        m.texts()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn socket_activation_serves_the_first_connection_that_woke_it() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = server("cases:application")
        .via(&["systemd-socket-activate", "-l", &listen, "--"])
        .no_default_listener()
        .no_wait()
        .start();
    s.wait_log(&[&format!("Listening on {listen}")]);
    // The connection that starts segue waits in the kernel queue and is served.
    let r = get(listen.parse().unwrap(), "/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    // The socket segue serves is the activator's, not one it bound itself.
    assert_eq!(s.status()["listeners"], serde_json::json!([listen]));
    s.wait_log(&[&format!(
        "listening on http://{listen} (socket from systemd)"
    )]);
    assert_eq!(s.log.count(&["cannot bind"]), 0);
}

#[test]
fn socket_activation_agrees_with_matching_http_and_refuses_a_mismatch() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let ok = server("cases:application")
        .via(&["systemd-socket-activate", "-l", &listen, "--"])
        .no_default_listener()
        .args(&["--http", &listen])
        .no_wait()
        .start();
    ok.wait_log(&[&format!("Listening on {listen}")]);
    assert_eq!(get(listen.parse().unwrap(), "/").status, 200);

    let other = format!("127.0.0.1:{}", free_port());
    let port2 = free_port();
    let listen2 = format!("127.0.0.1:{port2}");
    let mut bad = server("cases:application")
        .via(&["systemd-socket-activate", "-l", &listen2, "--"])
        .no_default_listener()
        .args(&["--http", &other])
        .no_wait()
        .start();
    bad.wait_log(&[&format!("Listening on {listen2}")]);
    let _ = support::try_get(listen2.parse().unwrap(), "/"); // wakes it; it must refuse to run
    let line = bad.wait_log(&["systemd passed sockets for"]);
    assert!(
        line.contains(&listen2) && line.contains(&other) && line.contains("ListenStream="),
        "{line}"
    );
    assert!(
        !bad.wait_exit(EVENT_TIMEOUT)
            .expect("segue kept running on mismatched sockets")
            .success()
    );
}

/// Sockets from systemd named by `--socket` and `--fastcgi-socket` speak those protocols (the
/// others would speak HTTP).
#[test]
fn socket_activation_gives_socket_and_fastcgi_socket_their_protocols() {
    let uwsgi = format!("127.0.0.1:{}", free_port());
    let fastcgi = format!("127.0.0.1:{}", free_port());
    let s = server("cases:application")
        .via(&[
            "systemd-socket-activate",
            "-l",
            &uwsgi,
            "-l",
            &fastcgi,
            "--",
        ])
        .no_default_listener()
        .args(&["--socket", &uwsgi, "--fastcgi-socket", &fastcgi])
        .no_wait()
        .start();
    s.wait_log(&[&format!("Listening on {fastcgi}")]);
    // A uwsgi packet wakes segue; it is answered as uWSGI would.
    let mut block = Vec::new();
    for (k, v) in [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/"),
        ("HTTP_HOST", "x"),
    ] {
        for part in [k, v] {
            block.extend_from_slice(&(part.len() as u16).to_le_bytes());
            block.extend_from_slice(part.as_bytes());
        }
    }
    let mut packet = vec![0];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    let mut c = std::net::TcpStream::connect(&uwsgi).unwrap();
    c.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    c.write_all(&packet).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n") && answer.ends_with(b"hello\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // FastCGI on the other socket.
    let mut f = fcgi::Client::connect(fastcgi.parse().unwrap());
    f.send(&fcgi::request(1, false, &fcgi::get_vars("/"), b"", 1));
    let (stdout, end) = f.response(1, &mut Vec::new());
    assert_eq!(end, Some((0, 0)));
    assert_eq!(fcgi::split(&stdout).2, b"hello\n");
    assert_eq!(
        s.status()["listeners"],
        serde_json::json!([format!("uwsgi://{uwsgi}"), format!("fastcgi://{fastcgi}")])
    );
}

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    // systemd-analyze reports unknown keys and bad values as warnings (exit code 0), so any
    // output fails the test. ExecStart must point at an existing binary: use this build's.
    let dir = std::env::temp_dir().join(format!("segue-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let units = ["segue.service", "segue.socket", "segue@.service"];
    for unit in units {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("systemd")
                .join(unit),
        )
        .unwrap();
        std::fs::write(
            dir.join(unit),
            text.replace("/usr/local/bin/segue", support::segue_bin()),
        )
        .unwrap();
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| dir.join(u)))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sockets_back_from_the_fd_store_are_adopted_by_name() {
    // After a restart systemd passes stored sockets as LISTEN_FDS with the FDNAME segue gave
    // them; systemd-socket-activate --fdname plays that part.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = server("cases:application")
        .via(&[
            "systemd-socket-activate",
            "-l",
            &listen,
            "--fdname=segue-listen-0",
            "--",
        ])
        .no_default_listener()
        .no_wait()
        .start();
    s.wait_log(&[&format!("Listening on {listen}")]);
    assert_eq!(get(listen.parse().unwrap(), "/").status, 200);
    s.wait_log(&[&format!(
        "listening on http://{listen} (socket 'segue-listen-0' from systemd)"
    )]);
}
