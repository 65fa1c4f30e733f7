//! `--preload`: one zygote per generation imports the app once and forks the workers. A crash
//! or a max-requests recycle forks again from the same zygote without importing; a reload
//! starts a new zygote that imports the new code, and the old one exits once its generation is
//! gone; an import that fails in the new zygote rolls the reload back while the old zygote keeps
//! forking. The app (`tests/apps/hooks.py`) leaves one marker file per import and per postfork
//! run, named by the worker id (`None` in the zygote), the generation and the pid.

mod support;

use support::*;

/// The zygote of `generation`: the pid of its one import.
fn zygote_of(s: &Server, generation: u64) -> i32 {
    let imports: Vec<_> = marks(&s.marks, "import")
        .into_iter()
        .filter(|m| m.1 == generation)
        .collect();
    assert_eq!(
        imports.len(),
        1,
        "generation {generation} must import exactly once, in its zygote: {imports:?}\n{}",
        s.log.all()
    );
    let (id, _, pid, runs) = imports[0];
    assert_eq!((id, runs), (0, 1), "{imports:?}");
    pid
}

fn alive(pid: i32) -> bool {
    proc_state(pid).is_some_and(|state| state != 'Z')
}

#[test]
fn workers_fork_from_one_zygote_and_replacements_do_not_import() {
    let s = server("hooks:application")
        .args(&["--workers", "2", "--preload", "--max-requests", "25"])
        .start();
    let zygote = zygote_of(&s, 1);
    let first = worker_pids(&s.status(), 1);
    assert_eq!(first.len(), 2);
    // The zygote is the master's child beside the workers; the workers are the master's
    // children too (reparented after the double fork), not the zygote's.
    let mut children = s.worker_pids();
    children.retain(|p| *p != zygote);
    let mut pids: Vec<i32> = first.iter().map(|w| w.1).collect();
    pids.sort();
    assert_eq!(children, pids, "{}", s.log.all());
    assert!(children_of(zygote).is_empty());

    let r = get(s.addr(), "/").json();
    assert_eq!(r["preloaded"], true, "{r}");
    assert_eq!(r["imported_in"], zygote, "{r}");
    assert_ne!(r["pid"], zygote, "{r}");
    assert_eq!(r["generation"], 1, "{r}");
    // One postfork run per worker, in the worker's own process.
    let want: Vec<_> = first.iter().map(|&(id, pid)| (id, 1, pid, 1)).collect();
    assert_eq!(marks(&s.marks, "postfork"), want, "{}", s.log.all());

    // A crash: the replacement is forked from the same zygote, without an import.
    let newest = newest_worker(&s.status());
    // SAFETY: kill(2) on a worker of the server this test started.
    unsafe { libc::kill(first[0].1, libc::SIGKILL) };
    let st = s.wait_replaced(2, newest);
    assert_eq!(zygote_of(&s, 1), zygote);
    let after_crash = worker_pids(&st, 1);
    let post = marks(&s.marks, "postfork");
    for &(id, pid) in &after_crash {
        assert!(post.contains(&(id, 1, pid, 1)), "{post:?}");
    }

    // Recycling at --max-requests: replacements forked too.
    let newest = newest_worker(&st);
    for _ in 0..80 {
        assert_eq!(get(s.addr(), "/").status, 200);
    }
    s.wait_status("recycled workers", |st| {
        let ready = workers_in(st, "ready");
        ready.len() == 2 && ready.iter().all(|&id| id > newest)
    });
    assert_eq!(zygote_of(&s, 1), zygote);
    assert!(alive(zygote));

    // A reload: a new zygote imports the new generation; the old one exits once its workers
    // are gone.
    s.signal(libc::SIGHUP);
    assert_eq!(s.wait_promoted(1)["generation"], 2);
    let second = zygote_of(&s, 2);
    assert_ne!(second, zygote);
    assert!(
        eventually(EVENT_TIMEOUT, || !alive(zygote)),
        "the old zygote outlived its generation\n{}",
        s.log.all()
    );
    let r = get(s.addr(), "/").json();
    assert_eq!(
        (r["generation"].as_u64(), r["imported_in"].as_i64()),
        (Some(2), Some(i64::from(second))),
        "{r}"
    );
    assert!(s.zombies().is_empty());
}

#[test]
fn a_failed_preload_import_rolls_back_and_the_old_zygote_keeps_forking() {
    // At first start, a failed import ends the master with the boot-failure status.
    let mut failing = server("hooks:application")
        .args(&["--preload"])
        .env("HOOK_FAIL", "import")
        .exits()
        .start();
    let status = failing
        .wait_exit(EVENT_TIMEOUT)
        .expect("segue should exit when the app cannot be preloaded");
    assert_eq!(status.code(), Some(3), "{}", failing.log.all());
    failing.wait_log(&["RuntimeError: the import fails on purpose"]);

    let s = server("hooks:application")
        .args(&["--workers", "2", "--preload"])
        .start();
    let zygote = zygote_of(&s, 1);
    std::fs::write(s.marks.join("fail-import"), "").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_rolled_back(1, "RuntimeError: the import fails on purpose");
    assert_eq!(get(s.addr(), "/").json()["generation"], 1);

    // The old generation still forks its replacements from its zygote.
    let newest = newest_worker(&s.status());
    let victim = worker_pids(&s.status(), 1)[0].1;
    // SAFETY: kill(2) on a worker of the server this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let st = s.wait_replaced(2, newest);
    assert_eq!(worker_pids(&st, 1).len(), 2, "{st}");
    assert_eq!(zygote_of(&s, 1), zygote);

    // A postfork hook that fails in the new generation's forked workers rolls back too.
    std::fs::remove_file(s.marks.join("fail-import")).unwrap();
    std::fs::write(s.marks.join("fail-postfork"), "").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_rolled_back(2, "postfork hook raised");
    std::fs::remove_file(s.marks.join("fail-postfork")).unwrap();
    s.signal(libc::SIGHUP);
    assert!(s.wait_promoted(3)["generation"].as_u64().unwrap() > 1);
    assert_eq!(get(s.addr(), "/").json()["preloaded"], true);
    assert!(s.zombies().is_empty());
}

#[test]
fn threads_started_at_import_are_refused_by_name_unless_allowed() {
    let mut s = server("import_thread:application")
        .args(&["--preload"])
        .exits()
        .start();
    let status = s.wait_exit(EVENT_TIMEOUT).expect("segue should exit");
    assert_eq!(status.code(), Some(3), "{}", s.log.all());
    s.wait_log(&["--preload: the app started 1 thread(s) at import ('metrics-flusher')"]);

    let s = server("import_thread:application")
        .args(&["--preload", "--preload-allow-threads"])
        .start();
    // Only the worker's own threads: the zygote's thread did not survive the fork.
    let r = get(s.addr(), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "threads: 1");
}

/// The proportional set size of `pid` in KiB (its share of the pages it maps).
fn pss_kib(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no Pss in /proc/{pid}/smaps_rollup:\n{text}"))
}

/// Four workers of an app that builds about 150 MB of objects at import; the PSS of the whole
/// server (workers, and the zygote with --preload) after some requests.
fn server_pss(preload: bool) -> (u64, Vec<u64>) {
    let mut args = vec!["--workers", "4", "--boot-timeout", "120"];
    if preload {
        args.push("--preload");
    }
    let s = server("big_heap:application").args(&args).start();
    for _ in 0..40 {
        assert_eq!(get(s.addr(), "/").text(), "1000000 items");
    }
    let workers: Vec<u64> = worker_pids(&s.status(), 1)
        .iter()
        .map(|w| pss_kib(w.1))
        .collect();
    assert_eq!(workers.len(), 4);
    let total = s.worker_pids().iter().map(|&p| pss_kib(p)).sum();
    (total, workers)
}

#[test]
fn preloaded_workers_share_the_apps_memory() {
    let (without, per_worker_without) = server_pss(false);
    let (with, per_worker_with) = server_pss(true);
    eprintln!(
        "PSS without --preload: {without} KiB (workers {per_worker_without:?}); with: {with} KiB \
         including the zygote (workers {per_worker_with:?})"
    );
    assert!(
        without > 4 * 100_000,
        "the app should take well over 100 MB per worker: {per_worker_without:?}"
    );
    assert!(
        with * 10 <= without * 6,
        "--preload should use at most 0.6 of the memory: {with} KiB vs {without} KiB"
    );
}

/// The seed's New Relic recipe with preloading: `newrelic-admin run-program segue ... --preload`
/// on a Flask app. The agent initialises in the zygote (which imports the app) and must start
/// its background thread in every worker after the fork, at the worker's first request: its
/// log shows the thread (`NR-Activate-Session`) by pid, trying to register with a collector
/// that is unreachable on purpose (127.0.0.1:1).
#[test]
fn the_seeds_new_relic_recipe_runs_the_agent_thread_in_every_worker() {
    let dir = support::oneshot::scratch("newrelic");
    let log = dir.join("newrelic-agent.log");
    std::fs::write(
        dir.join("newrelic.ini"),
        format!(
            "[newrelic]\n\
             license_key = 0123456789abcdef0123456789abcdef01234567\n\
             app_name = segue preload test\n\
             log_file = {}\n\
             log_level = debug\n\
             host = 127.0.0.1\n\
             port = 1\n",
            log.display()
        ),
    )
    .unwrap();
    let admin = test_venv().join("bin/newrelic-admin");
    let admin = admin.display().to_string();
    let s = server("flask_app:app")
        .args(&["--workers", "2", "--preload"])
        .env(
            "NEW_RELIC_CONFIG_FILE",
            &dir.join("newrelic.ini").display().to_string(),
        )
        .inside(&[&admin, "run-program"], segue_bin())
        .start();
    let workers: Vec<i32> = worker_pids(&s.status(), 1).iter().map(|w| w.1).collect();
    assert_eq!(workers.len(), 2);
    // Requests on new connections until each worker has served one (bounded).
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let r = get(s.addr(), "/pid");
        assert_eq!(r.status, 200, "{}", r.text());
        served.insert(r.text().parse::<i32>().unwrap());
        if workers.iter().all(|w| served.contains(w)) {
            break;
        }
    }
    assert!(
        workers.iter().all(|w| served.contains(w)),
        "not every worker served: {served:?} of {workers:?}"
    );
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();
    for pid in &workers {
        let thread = format!("({pid}/NR-Activate-Session");
        assert!(
            eventually(EVENT_TIMEOUT, || agent_log().contains(&thread)),
            "no agent thread in worker {pid}:\n{}",
            agent_log()
                .lines()
                .filter(|l| !l.contains("register module") && !l.contains("instrument module"))
                .take(60)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The agent was set up once, in the zygote, before the fork; no worker imported again.
    let zygotes = s
        .worker_pids()
        .into_iter()
        .filter(|p| !workers.contains(p))
        .collect::<Vec<_>>();
    assert!(
        zygotes.iter().any(|z| agent_log().contains(&format!(
            "({z}/MainThread) newrelic DEBUG - Initializing Python agent logging"
        ))),
        "the agent did not initialise in the zygote {zygotes:?}"
    );
}
