//! The daemons' rules, with paused time and no processes.

use super::*;

fn plain() -> DaemonSpec {
    DaemonSpec::plain("sleep 100").unwrap()
}

fn smart(daemonizes: bool) -> DaemonSpec {
    DaemonSpec::smart("/tmp/d.pid mydaemon", daemonizes).unwrap()
}

fn started_one(d: &mut Daemons) -> DaemonId {
    let mut out = Vec::new();
    d.start(&mut out);
    let Some(Effect::StartDaemon { id, .. }) = out.pop() else {
        panic!("no start: {out:?}");
    };
    d.started(id, 100, &mut Vec::new());
    id
}

#[tokio::test(start_paused = true)]
async fn a_dead_daemon_is_started_again_with_backoff_while_it_dies_young() {
    let mut d = Daemons::new(&[plain()]);
    let id = started_one(&mut d);
    let mut out = Vec::new();
    assert!(d.reaped(100, ExitKind::Signal(9), &mut out));
    let [Effect::After(delay, Timer::DaemonRestart { token, .. })] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(*delay, Duration::ZERO, "an isolated death restarts at once");
    let token = *token;
    out.clear();
    d.restart_due(id, token, &mut out);
    assert!(matches!(out.as_slice(), [Effect::StartDaemon { .. }]));
    d.started(id, 101, &mut Vec::new());
    out.clear();
    d.reaped(101, ExitKind::Code(1), &mut out);
    let [Effect::After(delay, _)] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert!(*delay > Duration::ZERO, "a second quick death waits");
    // A stale timer is ignored.
    out.clear();
    d.restart_due(id, token, &mut out);
    assert!(out.is_empty());
    assert_eq!(d.report()[0].restarts, 1);
    assert_eq!(d.report()[0].last_exit.as_deref(), Some("exit code 1"));
    // One that ran past the crash window counts as an isolated death again.
    let State::Waiting { token } = d.daemons[0].state else {
        panic!("{:?}", d.daemons[0].state);
    };
    out.clear();
    d.restart_due(id, token, &mut out);
    d.started(id, 102, &mut Vec::new());
    tokio::time::advance(CRASH_WINDOW * 2).await;
    out.clear();
    d.reaped(102, ExitKind::Code(0), &mut out);
    assert!(
        matches!(out.as_slice(), [Effect::After(Duration::ZERO, _)]),
        "{out:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_promoted_reload_restarts_plain_daemons_and_keeps_smart_ones() {
    let mut d = Daemons::new(&[plain(), smart(false)]);
    let mut out = Vec::new();
    d.start(&mut out);
    assert!(matches!(out[0], Effect::StartDaemon { id: 0, .. }));
    assert!(matches!(out[1], Effect::ReadPidfile { id: 1, .. }));
    d.started(0, 100, &mut Vec::new());
    out.clear();
    d.pidfile_read(1, None, &mut out);
    assert!(matches!(
        out.as_slice(),
        [Effect::StartDaemon { id: 1, .. }]
    ));
    d.started(1, 200, &mut Vec::new());
    out.clear();
    d.reload(&[plain(), smart(false)], &mut out);
    assert!(
        matches!(
            out.as_slice(),
            [Effect::SignalProcess {
                pid: 100,
                group: true,
                signal: libc::SIGTERM
            }]
        ),
        "{out:?}"
    );
    out.clear();
    d.reaped(100, ExitKind::Signal(libc::SIGTERM), &mut out);
    assert!(matches!(
        out.as_slice(),
        [Effect::StartDaemon { id: 0, .. }]
    ));
    assert_eq!(d.report()[0].restarts, 0, "a reload is not a restart");
    // A reload whose configuration drops the smart daemon stops it for good.
    d.started(0, 101, &mut Vec::new());
    out.clear();
    d.reload(&[plain()], &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    out.clear();
    d.reaped(200, ExitKind::Code(0), &mut out);
    assert!(out.is_empty());
    d.reaped(101, ExitKind::Code(0), &mut out);
    assert_eq!(d.report().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_smart_daemon_already_running_is_watched_not_started() {
    let mut d = Daemons::new(&[smart(true)]);
    let mut out = Vec::new();
    d.start(&mut out);
    out.clear();
    d.pidfile_read(0, Some(4242), &mut out);
    assert!(out.is_empty());
    assert_eq!(d.report()[0].pid, Some(4242));
    d.tick(&mut out);
    assert!(matches!(
        out.as_slice(),
        [Effect::ReadPidfile { id: 0, .. }]
    ));
    out.clear();
    // It died on its own: started again.
    d.pidfile_read(0, None, &mut out);
    let [Effect::After(_, Timer::DaemonRestart { id: 0, token })] = out.as_slice() else {
        panic!("{out:?}");
    };
    let token = *token;
    out.clear();
    d.restart_due(0, token, &mut out);
    assert!(matches!(out.as_slice(), [Effect::ReadPidfile { .. }]));
    out.clear();
    d.pidfile_read(0, None, &mut out);
    d.started(0, 300, &mut Vec::new());
    out.clear();
    // Its command daemonizes: exit 0 is expected, the pidfile tells the rest.
    d.reaped(300, ExitKind::Code(0), &mut out);
    assert!(matches!(out.as_slice(), [Effect::ReadPidfile { .. }]));
    out.clear();
    d.pidfile_read(0, Some(301), &mut out);
    assert!(out.is_empty());
    assert!(
        !d.any_alive(),
        "a detached daemon is not a child to wait for"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_hands_daemons_to_the_new_image() {
    let mut old = Daemons::new(&[plain(), smart(true)]);
    let mut out = Vec::new();
    old.start(&mut out);
    old.started(0, 100, &mut Vec::new());
    old.pidfile_read(1, Some(500), &mut out);
    let handed = old.handover();
    assert_eq!(handed[0].pid, Some(100));
    assert!(handed[0].child && !handed[1].child);
    // The new image's configuration dropped the smart daemon and added another plain one.
    let other = DaemonSpec::plain("exec sleep 5").unwrap();
    let mut new = Daemons::new(&[plain(), other]);
    out.clear();
    new.adopt(&handed, &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(
        out[0],
        Effect::SignalProcess {
            pid: 500,
            group: false,
            ..
        }
    ));
    assert!(matches!(out[1], Effect::StartDaemon { id: 1, .. }));
    assert_eq!(new.report()[0].pid, Some(100), "adopted, not started again");
    assert!(new.reaped(100, ExitKind::Code(0), &mut Vec::new()));
}

#[tokio::test(start_paused = true)]
async fn a_daemon_whose_start_a_stop_overtook_is_stopped_when_its_pid_arrives() {
    let mut d = Daemons::new(&[plain()]);
    let mut out = Vec::new();
    d.start(&mut out);
    out.clear();
    d.stop(true, &mut out);
    assert!(out.is_empty());
    assert!(
        d.any_alive(),
        "the master waits for the daemon being started"
    );
    d.started(0, 100, &mut out);
    assert!(matches!(
        out.as_slice(),
        [Effect::SignalProcess {
            pid: 100,
            signal: libc::SIGTERM,
            ..
        }]
    ));
    assert!(d.reaped(100, ExitKind::Signal(15), &mut Vec::new()));
    assert!(!d.any_alive());
}

#[tokio::test(start_paused = true)]
async fn a_stop_signals_every_daemon_and_nothing_starts_again() {
    let mut d = Daemons::new(&[plain(), smart(true)]);
    let mut out = Vec::new();
    d.start(&mut out);
    d.started(0, 100, &mut Vec::new());
    d.pidfile_read(1, Some(500), &mut out);
    out.clear();
    d.stop(true, &mut out);
    assert_eq!(out.len(), 2);
    assert!(matches!(
        out[0],
        Effect::SignalProcess {
            pid: 100,
            group: true,
            signal: libc::SIGTERM
        }
    ));
    assert!(matches!(
        out[1],
        Effect::SignalProcess {
            pid: 500,
            group: false,
            ..
        }
    ));
    assert!(d.any_alive());
    out.clear();
    d.kill_remaining(&mut out);
    assert!(matches!(
        out.as_slice(),
        [Effect::SignalProcess {
            signal: libc::SIGKILL,
            ..
        }]
    ));
    out.clear();
    d.reaped(100, ExitKind::Signal(9), &mut out);
    assert!(out.is_empty());
    assert!(!d.any_alive());
}

fn keyed(value: &str) -> DaemonSpec {
    DaemonSpec::keyed(value).unwrap()
}

fn signals(out: &[Effect]) -> Vec<(i32, bool, i32)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::SignalProcess { pid, group, signal } => Some((*pid, *group, *signal)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn stopsignal_replaces_sigterm_on_stop_and_on_a_reload_restart() {
    let spec = keyed("cmd=sleep 100,stopsignal=QUIT");
    let mut d = Daemons::new(std::slice::from_ref(&spec));
    started_one(&mut d);
    let mut out = Vec::new();
    d.reload(std::slice::from_ref(&spec), &mut out);
    assert_eq!(signals(&out), [(100, true, libc::SIGQUIT)]);
    out.clear();
    d.stop(true, &mut out);
    assert_eq!(signals(&out), [(100, true, libc::SIGQUIT)]);
    out.clear();
    d.stop(false, &mut out);
    assert_eq!(
        signals(&out),
        [(100, true, libc::SIGKILL)],
        "a quick stop kills"
    );
}

#[tokio::test(start_paused = true)]
async fn reloadsignal_signals_the_daemon_on_reload_and_keeps_it_running() {
    let spec = keyed("cmd=sleep 100,reloadsignal=1");
    let mut d = Daemons::new(std::slice::from_ref(&spec));
    started_one(&mut d);
    let mut out = Vec::new();
    d.reload(std::slice::from_ref(&spec), &mut out);
    assert_eq!(signals(&out), [(100, true, libc::SIGHUP)]);
    assert_eq!(d.report()[0].state, "running");
    // Dropped from the configuration, it is stopped like any other.
    out.clear();
    d.reload(&[], &mut out);
    assert_eq!(signals(&out), [(100, true, libc::SIGTERM)]);
}

#[tokio::test(start_paused = true)]
async fn a_control_daemon_that_ends_asks_for_the_server_to_stop_instead_of_a_restart() {
    let mut d = Daemons::new(&[keyed("cmd=sleep 100,control=1")]);
    started_one(&mut d);
    assert_eq!(d.take_control_exit(), None);
    let mut out = Vec::new();
    assert!(d.reaped(100, ExitKind::Code(2), &mut out));
    assert!(out.is_empty(), "not restarted: {out:?}");
    let why = d.take_control_exit().unwrap();
    assert!(
        why.contains("control daemon sleep 100 ended (exit code 2)"),
        "{why}"
    );
    assert_eq!(d.take_control_exit(), None, "said once");
    assert!(!d.any_alive());
}

#[tokio::test(start_paused = true)]
async fn a_touch_file_change_restarts_the_daemon_after_the_first_look() {
    let mut d = Daemons::new(&[keyed("cmd=sleep 100,touch=/t1;/t2,stopsignal=INT")]);
    let id = started_one(&mut d);
    let mut out = Vec::new();
    d.tick(&mut out);
    assert!(matches!(&out[..], [Effect::StatFiles { paths, .. }] if paths.len() == 2));
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
    let t1 = t0 + Duration::from_secs(1);
    out.clear();
    d.files_seen(id, vec![Some(t0), None], &mut out);
    d.files_seen(id, vec![Some(t0), None], &mut out);
    assert!(out.is_empty(), "first look, then no change");
    d.files_seen(id, vec![Some(t0), Some(t1)], &mut out);
    assert_eq!(
        signals(&out),
        [(100, true, libc::SIGINT)],
        "a file appeared"
    );
    out.clear();
    // Reaped after being asked: started again at once.
    d.reaped(100, ExitKind::Signal(2), &mut out);
    assert!(matches!(&out[..], [Effect::StartDaemon { .. }]), "{out:?}");
    out.clear();
    d.files_seen(id, vec![Some(t0), None], &mut out);
    assert!(out.is_empty(), "a file that goes away is no touch");
}
