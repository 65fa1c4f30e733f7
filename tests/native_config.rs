//! segue's own configuration file (`segue.toml`) and `SEGUE_*` variables: the same option
//! names as the command line, with precedence and typos handled as for every source.

mod support;

use std::time::Duration;

use support::oneshot::{run, scratch};
use support::{apps_dir, bare, get};

const SECS: Duration = Duration::from_secs(30);

#[test]
fn segue_toml_serves_with_its_settings() {
    let dir = scratch("segue-toml");
    let toml = format!(
        "app = \"cases:application\"\nchdir = {:?}\nworkers = 2\nthreads = 2\nenv = [\"A=1\", \"B=two\"]\n",
        apps_dir().display().to_string()
    );
    std::fs::write(dir.join("segue.toml"), toml).unwrap();
    let s = bare().cwd(&dir).args(&["--config", "segue.toml"]).start();
    assert_eq!(s.status()["workers"].as_array().unwrap().len(), 2);
    let env = get(s.addr(), "/osenv?keys=A,B").json();
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "two");
}

#[test]
fn segue_toml_typos_and_environment_precedence() {
    let dir = scratch("segue-toml-typo");
    std::fs::write(dir.join("segue.toml"), "app = \"cases\"\nworkres = 2\n").unwrap();
    let out = run(&dir, &["-c", "segue.toml"], &[], SECS);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("segue.toml:2: workres: not an option (did you mean 'workers'?)"),
        "{}",
        out.stderr
    );

    std::fs::write(
        dir.join("segue.toml"),
        "app = \"cases\"\nworkers = 2\nhttp = [\"127.0.0.1:7001\", \"unix:/tmp/s.sock\"]\n",
    )
    .unwrap();
    let doc = run(
        &dir,
        &["-c", "segue.toml", "--print-config"],
        &[
            ("SEGUE_WORKERS", "3"),
            ("SEGUE_HTTP", "127.0.0.1:7002,127.0.0.1:7003"),
        ],
        SECS,
    )
    .json();
    assert_eq!(doc["settings"]["workers"]["value"], 3);
    assert_eq!(
        doc["settings"]["http"]["value"],
        serde_json::json!(["127.0.0.1:7002", "127.0.0.1:7003"])
    );
    let doc = run(&dir, &["-c", "segue.toml", "--print-config"], &[], SECS).json();
    assert_eq!(
        doc["settings"]["http"]["value"],
        serde_json::json!(["127.0.0.1:7001", "unix:/tmp/s.sock"])
    );
    assert!(
        doc["settings"]["workers"]["source"]
            .as_str()
            .unwrap()
            .ends_with("segue.toml:2")
    );

    std::fs::write(dir.join("bad.toml"), "workers = \n").unwrap();
    let out = run(&dir, &["-c", "bad.toml", "--print-config"], &[], SECS);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("bad.toml:1"), "{}", out.stderr);
}
