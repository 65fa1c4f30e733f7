//! `segue check-reload`, the CI gate: passes on a real Flask app with both strategies, fails
//! (non-zero, reason printed, JUnit failure) when reloads cannot import.

mod support;

use std::process::Command;

use support::{apps_dir, segue_bin, test_venv};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("segue-check-test-{}-{name}", std::process::id()))
}

fn check(extra: &[&str], app: &str, name: &str) -> (i32, String, serde_json::Value, String) {
    let (json, junit) = (tmp(&format!("{name}.json")), tmp(&format!("{name}.xml")));
    let out = Command::new(segue_bin())
        .arg("check-reload")
        .args([
            "--chdir",
            apps_dir().to_str().unwrap(),
            "--workers",
            "2",
            "--reloads",
            "2",
            "--duration",
            "4",
        ])
        .args([
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ])
        .args(extra)
        .arg(app)
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    let stdout =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let report = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}")),
    )
    .unwrap();
    let junit = std::fs::read_to_string(&junit).unwrap();
    (out.status.code().unwrap_or(-1), stdout, report, junit)
}

fn passes_on_flask(strategy: &str) {
    let venv = test_venv();
    let (code, out, report, junit) = check(
        &[
            "--virtualenv",
            venv.to_str().unwrap(),
            "--threads",
            "2",
            "--strategy",
            strategy,
            "--url",
            "/",
            "--url",
            "/json",
        ],
        "flask_app:application",
        strategy,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("check-reload PASSED"), "{out}");
    assert_eq!(report["passed"], true);
    assert_eq!(report["failed"], 0);
    assert!(report["requests"].as_u64().unwrap() > 100, "{report}");
    assert_eq!(report["strategy"], strategy);
    let reloads = report["reloads"].as_array().unwrap();
    assert_eq!(reloads.len(), 2);
    for r in reloads {
        assert!(
            r["new_serving_ms"].as_u64().is_some()
                && r["old_gone_ms"].as_u64() >= r["new_serving_ms"].as_u64(),
            "{r}"
        );
        assert_eq!(r["master"]["ok"], true);
    }
    assert!(report["peak_rss_mib"].as_f64().unwrap() > 10.0);
    assert!(
        report["steady"]["p99_ms"].as_f64().is_some()
            && report["during_reloads"]["requests"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        junit.contains("tests=\"3\" failures=\"0\"")
            && junit.contains(&format!("name=\"reload 2 ({strategy})\"")),
        "{junit}"
    );
}

#[test]
fn passes_on_flask_with_chain() {
    passes_on_flask("chain");
}

#[test]
fn passes_on_flask_with_respawn() {
    passes_on_flask("respawn");
}

#[test]
fn fails_with_the_reason_when_reloads_cannot_import() {
    let counter = tmp("imports");
    let _ = std::fs::remove_file(&counter);
    let env = format!("SEGUE_IMPORT_COUNTER={}", counter.display());
    let (code, out, report, junit) = check(
        &["--env", &env, "--env", "SEGUE_IMPORTS_ALLOWED=2"],
        "reload_breaks:application",
        "broken",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("check-reload FAILED") && out.contains("rolled back"),
        "{out}"
    );
    assert!(
        out.contains("ImportError: import number") && out.contains("this app cannot be reloaded"),
        "{out}"
    );
    assert_eq!(report["passed"], false);
    assert_eq!(
        report["failed"], 0,
        "the old generation kept serving: no request may fail"
    );
    assert_eq!(report["reloads"][0]["master"]["ok"], false);
    assert!(
        junit.contains("failures=\"2\"") && junit.contains("<failure message=\"rolled back"),
        "{junit}\n{out}"
    );
}

#[test]
fn refuses_urls_that_are_not_paths() {
    let out = Command::new(segue_bin())
        .args(["check-reload", "--url", "http://example.com/", "app"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be a path starting with '/'"));
}

#[test]
fn an_app_that_does_not_boot_fails_the_check_at_once_with_the_reason() {
    // The private master exits with status 3 at its first start (the import fails); the check
    // does not wait for --boot-timeout plus 10 s, and shows why from the server's log.
    let started = std::time::Instant::now();
    let out = Command::new(segue_bin())
        .args([
            "check-reload",
            "--chdir",
            apps_dir().to_str().unwrap(),
            "--boot-timeout",
            "30",
            "--duration",
            "1",
            "no_such_module:app",
        ])
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "the app did not start serving: it did not boot (the master exited with status 3"
        ) && err.contains("cannot import 'no_such_module:app'")
            && err.contains("segue exits: the app did not boot at first start"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

/// `--html`: the page renders in headless Chromium (Debian's package), with one shaded window
/// per reload at a visible width, and a screenshot of it can be taken.
#[test]
fn the_html_report_renders_in_chromium_with_the_reload_windows() {
    let html = tmp("report.html");
    let (code, out, report, _) = check(
        &["--html", html.to_str().unwrap()],
        "cases:application",
        "html",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["timeline"].as_array().unwrap().len(), 40, "{report}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("check-reload PASSED") && page.contains("<svg"),
        "{page}"
    );
    let profile = tmp("chromium-profile");
    let chromium = |args: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--window-size=1100,900"])
            .args(args)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("cannot run chromium (scripts/test installs it: apt-get install chromium)")
    };
    // The rendered DOM: the page measured its reload windows once laid out.
    let dom = chromium(&["--dump-dom", "--virtual-time-budget=2000"]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let widths: Vec<u32> = dom_text
        .split("data-reload-widths=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "no rendered reload widths: {dom_text:.2000}\n{}",
                String::from_utf8_lossy(&dom.stderr)
            )
        })
        .split(',')
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(widths.len(), 2, "{widths:?}");
    assert!(widths.iter().all(|w| *w >= 2), "{widths:?}");
    // And a picture of it.
    let png = tmp("report.png");
    let shot = chromium(&[&format!("--screenshot={}", png.display())]);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
}
