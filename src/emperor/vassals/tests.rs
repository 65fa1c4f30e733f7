use super::*;

use tokio::time::advance;

fn fp(n: u64) -> Fingerprint {
    Fingerprint {
        mtime_ns: i128::from(n),
        len: 10,
        hash: n,
    }
}

fn scan(files: &[(&str, u64)]) -> Scan {
    Scan {
        files: files
            .iter()
            .map(|(p, n)| (PathBuf::from(p), fp(*n)))
            .collect(),
        unreadable: Vec::new(),
    }
}

fn state(v: &Vassals, path: &str) -> Option<&'static str> {
    v.report(Instant::now())
        .into_iter()
        .find(|r| r.config == Path::new(path))
        .map(|r| r.state)
}

fn signal(pid: i32, sig: Sig) -> Action {
    Action::Signal { pid, sig }
}

/// Starts `path` as `pid` and lets it report ready.
fn ready(v: &mut Vassals, path: &str, pid: i32) {
    assert_eq!(v.started(Path::new(path), Ok(pid), Instant::now()), []);
    assert_eq!(v.notified(pid, "READY=1\nSTATUS=serving"), []);
    assert_eq!(state(v, path), Some("running"));
}

const KILL_AFTER: Duration = Duration::from_secs(40);

#[tokio::test(start_paused = true)]
async fn new_files_start_vassals_and_ready_makes_them_running() {
    let mut v = Vassals::new(KILL_AFTER);
    let acts = v.scanned(scan(&[("/v/a.ini", 1), ("/v/b.toml", 1)]), Instant::now());
    assert_eq!(
        acts,
        [
            Action::Start("/v/a.ini".into()),
            Action::Start("/v/b.toml".into())
        ]
    );
    assert_eq!(state(&v, "/v/a.ini"), Some("starting"));
    ready(&mut v, "/v/a.ini", 100);
    // The same scan again changes nothing.
    assert_eq!(
        v.scanned(scan(&[("/v/a.ini", 1), ("/v/b.toml", 1)]), Instant::now()),
        []
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_file_reloads_its_vassal_once_it_is_ready() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1)]), Instant::now());
    ready(&mut v, "/v/a.ini", 100);
    assert_eq!(
        v.scanned(scan(&[("/v/a.ini", 2)]), Instant::now()),
        [signal(100, Sig::Reload)]
    );
    assert_eq!(state(&v, "/v/a.ini"), Some("reloading"));
    assert_eq!(v.notified(100, "RELOADING=1\nMONOTONIC_USEC=5"), []);
    assert_eq!(v.notified(100, "READY=1"), []);
    assert_eq!(state(&v, "/v/a.ini"), Some("running"));

    // Changed while still starting: no SIGHUP (it would kill a master without handlers yet)
    // until it is ready.
    v.scanned(scan(&[("/v/a.ini", 2), ("/v/b.ini", 1)]), Instant::now());
    assert_eq!(
        v.started(Path::new("/v/b.ini"), Ok(200), Instant::now()),
        []
    );
    assert_eq!(
        v.scanned(scan(&[("/v/a.ini", 2), ("/v/b.ini", 2)]), Instant::now()),
        []
    );
    assert_eq!(v.notified(200, "READY=1"), [signal(200, Sig::Reload)]);
    assert_eq!(state(&v, "/v/b.ini"), Some("reloading"));
}

#[tokio::test(start_paused = true)]
async fn a_deleted_file_stops_its_vassal_and_a_slow_one_is_killed() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1), ("/v/b.ini", 1)]), Instant::now());
    ready(&mut v, "/v/a.ini", 100);
    ready(&mut v, "/v/b.ini", 200);
    assert_eq!(
        v.scanned(scan(&[("/v/b.ini", 1)]), Instant::now()),
        [signal(100, Sig::Stop)]
    );
    assert_eq!(state(&v, "/v/a.ini"), Some("stopping"));
    // Not signalled twice.
    assert_eq!(v.scanned(scan(&[("/v/b.ini", 1)]), Instant::now()), []);
    assert_eq!(v.next_deadline(), Some(Instant::now() + KILL_AFTER));
    advance(KILL_AFTER).await;
    assert_eq!(v.tick(Instant::now()), [signal(100, Sig::Kill)]);
    assert_eq!(v.tick(Instant::now()), []);
    let (ours, acts) = v.exited(100, ExitKind::Signal(9), Instant::now());
    assert!(ours);
    assert_eq!(acts, []);
    assert_eq!(state(&v, "/v/a.ini"), None);
    assert_eq!(
        v.exited(12345, ExitKind::Code(0), Instant::now()),
        (false, vec![])
    );
}

#[tokio::test(start_paused = true)]
async fn a_file_that_comes_back_while_its_vassal_stops_starts_it_again() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1)]), Instant::now());
    ready(&mut v, "/v/a.ini", 100);
    v.scanned(scan(&[]), Instant::now());
    assert_eq!(v.scanned(scan(&[("/v/a.ini", 1)]), Instant::now()), []);
    let (_, acts) = v.exited(100, ExitKind::Code(0), Instant::now());
    assert_eq!(acts, [Action::Start("/v/a.ini".into())]);
    assert_eq!(state(&v, "/v/a.ini"), Some("starting"));
}

#[tokio::test(start_paused = true)]
async fn a_dying_vassal_is_restarted_with_growing_pauses_reset_by_ready() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1)]), Instant::now());
    let mut pid = 100;
    let mut pauses = Vec::new();
    for _ in 0..7 {
        v.started(Path::new("/v/a.ini"), Ok(pid), Instant::now());
        let (_, acts) = v.exited(pid, ExitKind::Code(1), Instant::now());
        assert_eq!(acts, []);
        assert_eq!(state(&v, "/v/a.ini"), Some("waiting to restart"));
        let due = v.next_deadline().unwrap();
        pauses.push((due - Instant::now()).as_secs());
        assert_eq!(v.tick(Instant::now()), [], "not before it is due");
        advance(due - Instant::now()).await;
        assert_eq!(v.tick(Instant::now()), [Action::Start("/v/a.ini".into())]);
        pid += 1;
    }
    assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30]);
    let r = &v.report(Instant::now())[0];
    assert_eq!(r.restarts, 7);
    assert_eq!(r.last_exit.as_deref(), Some("exit code 1"));
    // Once it has been ready, the next death waits the first pause again.
    ready(&mut v, "/v/a.ini", pid);
    v.exited(pid, ExitKind::Signal(9), Instant::now());
    assert_eq!(v.next_deadline(), Some(Instant::now() + BACKOFF_FIRST));
    // A fixed file is tried at once.
    assert_eq!(
        v.scanned(scan(&[("/v/a.ini", 2)]), Instant::now()),
        [Action::Start("/v/a.ini".into())]
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_directory_keeps_its_vassals() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1), ("/w/b.ini", 1)]), Instant::now());
    ready(&mut v, "/v/a.ini", 100);
    ready(&mut v, "/w/b.ini", 200);
    let mut s = scan(&[("/w/b.ini", 1)]);
    s.unreadable.push("/v".into());
    assert_eq!(v.scanned(s, Instant::now()), []);
    assert_eq!(state(&v, "/v/a.ini"), Some("running"));
}

#[tokio::test(start_paused = true)]
async fn a_start_that_fails_waits_like_a_death() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1)]), Instant::now());
    let acts = v.started(
        Path::new("/v/a.ini"),
        Err("no such file".into()),
        Instant::now(),
    );
    assert_eq!(acts, []);
    assert_eq!(state(&v, "/v/a.ini"), Some("waiting to restart"));
    assert_eq!(
        v.report(Instant::now())[0].last_exit.as_deref(),
        Some("could not start: no such file")
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_the_emperor_stops_every_vassal_then_exits() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(
        scan(&[
            ("/v/a.ini", 1),
            ("/v/b.ini", 1),
            ("/v/c.ini", 1),
            ("/v/d.ini", 1),
        ]),
        Instant::now(),
    );
    ready(&mut v, "/v/a.ini", 100);
    ready(&mut v, "/v/b.ini", 200);
    v.started(Path::new("/v/c.ini"), Ok(300), Instant::now());
    v.exited(300, ExitKind::Code(1), Instant::now());
    // d is being started: its pid is not known yet.
    let acts = v.stop(Instant::now());
    assert_eq!(acts, [signal(100, Sig::Stop), signal(200, Sig::Stop)]);
    assert_eq!(state(&v, "/v/c.ini"), None, "a waiting vassal is dropped");
    assert_eq!(
        v.started(Path::new("/v/d.ini"), Ok(400), Instant::now()),
        [signal(400, Sig::Stop)],
        "one that was starting is stopped as soon as its pid is known"
    );
    // Scans, reloads and due restarts are ignored from now on.
    assert_eq!(v.scanned(scan(&[("/v/e.ini", 1)]), Instant::now()), []);
    assert_eq!(v.reload_all(), []);
    assert_eq!(v.exited(100, ExitKind::Code(0), Instant::now()).1, []);
    assert_eq!(v.exited(400, ExitKind::Code(0), Instant::now()).1, []);
    assert_eq!(
        v.exited(200, ExitKind::Code(0), Instant::now()).1,
        [Action::Exit(0)]
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_with_no_vassals_exits_at_once() {
    let mut v = Vassals::new(KILL_AFTER);
    assert_eq!(v.stop(Instant::now()), [Action::Exit(0)]);
}

#[tokio::test(start_paused = true)]
async fn reload_all_signals_ready_vassals_and_defers_starting_ones() {
    let mut v = Vassals::new(KILL_AFTER);
    v.scanned(scan(&[("/v/a.ini", 1), ("/v/b.ini", 1)]), Instant::now());
    ready(&mut v, "/v/a.ini", 100);
    v.started(Path::new("/v/b.ini"), Ok(200), Instant::now());
    assert_eq!(v.reload_all(), [signal(100, Sig::Reload)]);
    assert_eq!(v.notified(200, "READY=1"), [signal(200, Sig::Reload)]);
    // A message from a process that is no vassal changes nothing.
    assert_eq!(v.notified(999, "READY=1"), []);
}
