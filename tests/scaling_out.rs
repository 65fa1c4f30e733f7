//! Several segue instances behind one nginx, the setup docs/scaling-out.md describes: a rolling
//! deploy (`segue reload --wait` on one instance, then the other) and taking an instance out
//! (SIGTERM) under load lose no request at nginx, and `/readyz` on each instance's metrics
//! listener says when it can take traffic.

#[allow(dead_code)]
#[path = "support/nginx.rs"]
mod nginx;
mod support;

use std::process::Command;
use std::time::Duration;

use nginx::Nginx;
use support::*;

fn reload_wait(control: &std::path::Path) {
    let out = Command::new(segue_bin())
        .args(["reload", "--wait", "--quiet", "--control"])
        .arg(control)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn readyz(path: &std::path::Path) -> Option<u16> {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(path).ok()?;
    c.write_all(b"GET /readyz HTTP/1.1\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn two_instances_behind_nginx_deploy_one_at_a_time_and_leave_without_losing_requests() {
    let deploy = Deploy::new("v1");
    let metrics: Vec<_> = (0..2)
        .map(|i| deploy.root.join(format!("metrics-{i}.sock")))
        .collect();
    let mut instances: Vec<Server> = metrics
        .iter()
        .map(|m| {
            server_in(&deploy.root, "versioned:application")
                .args(&["--workers", "2", "--metrics", m.to_str().unwrap()])
                .start()
        })
        .collect();
    for m in &metrics {
        assert_eq!(readyz(m), Some(200));
    }
    let dir = support::oneshot::scratch("scaling-out-nginx");
    let front = Nginx::proxy_to_many(&dir, &[instances[0].addr(), instances[1].addr()]);
    assert_eq!(get(front.addr, "/").text(), "v1");

    // A rolling deploy: one instance at a time, each reload waited for.
    let load = Load::start(front.addr, "/", 3, 2, Duration::from_secs(120));
    deploy.version("v2");
    for s in &instances {
        reload_wait(&s.control);
    }
    assert!(
        eventually(EVENT_TIMEOUT, || (0..10)
            .all(|_| get(front.addr, "/").text() == "v2")),
        "v2 is not what nginx serves"
    );
    // Taking instance 0 out: SIGTERM drains it; nginx sends the rest to instance 1.
    instances[0].signal(libc::SIGTERM);
    instances[0]
        .wait_exit(EVENT_TIMEOUT)
        .expect("instance 0 should stop");
    assert_eq!(
        readyz(&metrics[0]),
        None,
        "its metrics listener is gone with it"
    );
    for _ in 0..20 {
        assert_eq!(get(front.addr, "/").status, 200);
    }
    let report = load.stop();
    nginx::nothing_lost_at(&front, &report, &instances[1].log.all());
    assert_eq!(readyz(&metrics[1]), Some(200));
}
