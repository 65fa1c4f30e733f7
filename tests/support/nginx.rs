//! A real nginx in front of segue for the uwsgi tests: started by the test as its own child (no
//! daemon, no master process, in its own process group), on a free loopback port, with its pid
//! file, logs and temp directories in a scratch directory; killed on drop.

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
        let params = if Path::new("/etc/nginx/uwsgi_params").exists() {
            PathBuf::from("/etc/nginx/uwsgi_params")
        } else {
            let p = dir.join("uwsgi_params");
            std::fs::write(&p, PARAMS).unwrap();
            p
        };
        let port = free_port();
        let d = dir.display();
        let p = params.display();
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
    server {{
        listen 127.0.0.1:{port};
        server_name segue-test;
        location / {{
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
        }}
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
