//! A real nginx in front of segue for the uwsgi and FastCGI tests: started by the test as its
//! own child (no daemon, no master process, in its own process group), on a free loopback port,
//! with its pid file, logs and temp directories in a scratch directory; killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The parameters nginx passes to a uwsgi backend: Debian's file when it is there, else the
/// same list written into the scratch directory.
const PARAMS: &str = "uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REQUEST_SCHEME $scheme;
uwsgi_param HTTPS $https if_not_empty;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
";

/// The parameters nginx passes to a FastCGI backend, as nginx ships them (Debian's file when it
/// is there).
const FASTCGI_PARAMS: &str = "fastcgi_param QUERY_STRING $query_string;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param CONTENT_TYPE $content_type;
fastcgi_param CONTENT_LENGTH $content_length;
fastcgi_param SCRIPT_NAME $fastcgi_script_name;
fastcgi_param REQUEST_URI $request_uri;
fastcgi_param DOCUMENT_URI $document_uri;
fastcgi_param DOCUMENT_ROOT $document_root;
fastcgi_param SERVER_PROTOCOL $server_protocol;
fastcgi_param REQUEST_SCHEME $scheme;
fastcgi_param HTTPS $https if_not_empty;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
fastcgi_param REMOTE_ADDR $remote_addr;
fastcgi_param REMOTE_PORT $remote_port;
fastcgi_param SERVER_ADDR $server_addr;
fastcgi_param SERVER_PORT $server_port;
fastcgi_param SERVER_NAME $server_name;
";

/// A params file: nginx's own from /etc/nginx when it is there, else `fallback` written into
/// `dir`.
fn params_file(dir: &Path, name: &str, fallback: &str) -> PathBuf {
    let system = Path::new("/etc/nginx").join(name);
    if system.exists() {
        return system;
    }
    let p = dir.join(name);
    std::fs::write(&p, fallback).unwrap();
    p
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// nginx on a free port passing every request to `upstream` (`127.0.0.1:PORT` or
    /// `unix:/path`): `/` plainly, `/secure/` with `HTTPS on` (under `SCRIPT_NAME /secure`), `/app/` with `SCRIPT_NAME
    /// /app` and modifier1 30 (PATH_INFO without the prefix).
    pub fn start(dir: &Path, upstream: &str) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let p = params_file(dir, "uwsgi_params", PARAMS);
        let p = p.display();
        let locations = format!(
            "location / {{
            include {p};
            uwsgi_pass {upstream};
        }}
        location /secure/ {{
            include {p};
            uwsgi_param HTTPS on;
            uwsgi_param SCRIPT_NAME /secure;
            uwsgi_modifier1 30;
            uwsgi_pass {upstream};
        }}
        location /app/ {{
            include {p};
            uwsgi_param SCRIPT_NAME /app;
            uwsgi_modifier1 30;
            uwsgi_pass {upstream};
        }}"
        );
        Nginx::run(dir, "", &locations)
    }

    /// nginx on a free port passing every request to `upstream` over FastCGI with
    /// `fastcgi_keep_conn on` and an upstream `keepalive` pool (so connections carry request
    /// after request): `/` with nginx's `fastcgi_params` alone; `/secure/` with `HTTPS on` (under `SCRIPT_NAME /secure`);
    /// `/app/` with `SCRIPT_NAME /app` and `PATH_INFO` from `fastcgi_split_path_info`; `/plain/`
    /// with `SCRIPT_NAME /plain` and no `PATH_INFO`; `/once/`
    /// without keep-conn (a connection per request).
    pub fn fastcgi(dir: &Path, upstream: &str) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let p = params_file(dir, "fastcgi_params", FASTCGI_PARAMS);
        let p = p.display();
        let upstreams = format!("upstream segue {{ server {upstream}; keepalive 8; }}");
        let locations = format!(
            "location / {{
            include {p};
            fastcgi_keep_conn on;
            fastcgi_pass segue;
        }}
        location /secure/ {{
            include {p};
            fastcgi_split_path_info ^(/secure)(/.*)$;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_param HTTPS on;
            fastcgi_keep_conn on;
            fastcgi_pass segue;
        }}
        location /app/ {{
            include {p};
            fastcgi_split_path_info ^(/app)(/.*)$;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_keep_conn on;
            fastcgi_pass segue;
        }}
        location /plain/ {{
            include {p};
            fastcgi_param SCRIPT_NAME /plain;
            fastcgi_keep_conn on;
            fastcgi_pass segue;
        }}
        location /once/ {{
            include {p};
            fastcgi_split_path_info ^(/once)(/.*)$;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_pass {upstream};
        }}"
        );
        Nginx::run(dir, &upstreams, &locations)
    }

    /// Writes the configuration around `upstreams` and the server's `locations`, starts nginx
    /// and waits until it listens.
    /// nginx on a free port proxying HTTP to every server in `upstreams` (round robin, the next
    /// one tried on a connection error, as for several segue instances behind one nginx).
    pub fn proxy_to_many(dir: &Path, upstreams: &[SocketAddr]) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("server {a} max_fails=0;\n"))
            .collect();
        let upstream = format!("upstream segues {{\n{servers}    keepalive 8;\n}}");
        let locations = "location / {
            proxy_pass http://segues;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502;
        }";
        Nginx::run(dir, &upstream, locations)
    }

    fn run(dir: &Path, upstreams: &str, locations: &str) -> Nginx {
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 20m;
    large_client_header_buffers 8 64k;
    {upstreams}
    server {{
        listen 127.0.0.1:{port};
        server_name segue-test;
        {locations}
    }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .process_group(0)
            .spawn()
            .expect("cannot start nginx (scripts/test installs it: apt-get install nginx)");
        let mut nginx = Nginx {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(nginx.addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// nginx's error log so far (and what it wrote to stderr before opening it).
    pub fn error_log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        read("stderr.log") + &read("error.log")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 1 MB upload echoed whole and in order, and 30 KB of header fields, through `addr`.
pub fn check_upload_and_big_headers(addr: SocketAddr) {
    use crate::support::Conn;
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut c = Conn::open(addr);
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "the echoed body differs from the upload");

    let mut c = Conn::open(addr);
    let big: String = "x".repeat(6000);
    let mut req = "GET /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_owned();
    for i in 0..5 {
        req.push_str(&format!("X-Big-{i}: {big}\r\n"));
    }
    req.push_str("\r\n");
    c.send(req.as_bytes());
    let r = c.read_response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let env = r.json();
    for i in 0..5 {
        assert_eq!(
            env[format!("HTTP_X_BIG_{i}")].as_str().map(str::len),
            Some(6000)
        );
    }
}

/// Five reloads of `s` while clients send requests through `front`: every one gets a 200 at
/// nginx (a 502 would be a lost request).
pub fn reloads_lose_nothing(s: &crate::support::Server, front: &Nginx) {
    let load = crate::support::Load::start(front.addr, "/", 3, 2, Duration::from_secs(120));
    for n in 1..=5 {
        s.signal(libc::SIGHUP);
        s.wait_promoted(n);
    }
    let report = load.stop();
    nothing_lost_at(front, &report, &s.log.all());
}

/// Every request of `report` got a 200 at nginx (a 502 would be a lost request), and there
/// was enough load to prove it.
pub fn nothing_lost_at(front: &Nginx, report: &crate::support::LoadReport, log: &str) {
    assert!(
        report.failures.is_empty(),
        "{} failed requests, e.g. {:?}\n{}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)],
        front.error_log()
    );
    let bad = report.bad_statuses();
    assert!(
        bad.is_empty(),
        "{} non-200 responses at nginx (a 502 is a lost request), e.g. {:?}\n{}\n{log}",
        bad.len(),
        &bad[..bad.len().min(5)],
        front.error_log(),
    );
    assert!(
        report.ok() > 100,
        "too little load: {} responses",
        report.ok()
    );
}

/// A static directory for `--static-map` (a 3 MB file and a stylesheet) under `dir`; returns the
/// `--static-map` value.
pub fn static_dir(dir: &Path) -> String {
    let statics = dir.join("static");
    std::fs::create_dir_all(&statics).unwrap();
    std::fs::write(statics.join("big.bin"), big_static()).unwrap();
    std::fs::write(statics.join("app.css"), "body { color: red }\n").unwrap();
    format!("/static={}", statics.display())
}

fn big_static() -> Vec<u8> {
    (0..3_000_000u32).map(|i| (i % 251) as u8).collect()
}

/// What a server with [`static_dir`] mapped serves through `front`: static files (answered by
/// the worker without Python) whole, a missing one falling through to the app, and a
/// `wsgi.file_wrapper` body whole.
pub fn check_static_and_file_wrapper(front: &Nginx) {
    use crate::support::get;
    let css = get(front.addr, "/static/app.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css"));
    assert_eq!(css.text(), "body { color: red }\n");
    let r = get(front.addr, "/static/big.bin");
    assert_eq!(r.status, 200);
    assert!(
        r.body == big_static(),
        "a 3 MB static file arrives whole ({} bytes)",
        r.body.len()
    );
    assert_eq!(
        get(front.addr, "/static/missing.css").status,
        404,
        "falls through to the app"
    );
    let r = get(front.addr, "/file?tens=200000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 2_000_000);
    assert!(
        r.body.chunks(10).all(|c| c == b"0123456789"),
        "file_wrapper body intact"
    );
}
