//! The `segue` binary: parse the command line, then run as the master, as a control client, or
//! (when the master re-executes us) as a worker.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use segue::config::{Cli, Command, ControlArgs, Invocation};
use segue::control::{Request, client};
use segue::master::Start;

/// mimalloc instead of glibc's malloc for Rust's allocations (Python keeps its own). Buffers and
/// bodies are allocated on the I/O thread and freed on a Python thread and back; glibc's arenas
/// spent about a sixth of a worker's CPU on that in a hello-world profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The words that start a subcommand rather than serving.
const SUBCOMMANDS: [&str; 9] = [
    "reload",
    "status",
    "top",
    "stop",
    "workers",
    "upgrade",
    "check-reload",
    "__master",
    "__upgrade-check",
];

/// check-reload's own flags that take a value; everything else it is given is for serving.
const CHECK_RELOAD_VALUES: [&str; 8] = [
    "--reloads",
    "--duration",
    "--strategy",
    "--url",
    "--concurrency",
    "--json",
    "--junit",
    "--html",
];

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main, before any thread exists.
    let handover = unsafe { segue::master::upgrade::take_from_env() };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match args.first().map(String::as_str) {
        Some(sub) if SUBCOMMANDS.contains(&sub) && sub == "check-reload" => {
            let (own, serve) = split_check_reload(&args[1..]);
            let mut cli = Cli::parse_from(
                ["segue", "check-reload"]
                    .into_iter()
                    .map(String::from)
                    .chain(own),
            );
            if let Command::CheckReload { serve: s, .. } = &mut cli.command {
                *s = serve;
            }
            cli
        }
        Some(sub) if SUBCOMMANDS.contains(&sub) => Cli::parse(),
        _ => std::process::exit(serve(args, handover)),
    };
    let (request, control, timeout) = match cli.command {
        Command::UpgradeCheck => {
            println!("{}", segue::master::upgrade::check_line());
            return Ok(());
        }
        Command::Upgrade {
            binary,
            wait,
            timeout,
            control,
        } => {
            let timeout = Duration::try_from_secs_f64(timeout)
                .context("--timeout must be a positive number of seconds")?;
            let mut printer = client::Printer::stdio(control.json);
            let code = client::upgrade(&control.control, binary, wait, timeout, &mut printer)?;
            std::process::exit(printer.finish(code));
        }
        Command::Master => {
            let json = std::env::var(segue::check::MASTER_CONFIG_ENV)
                .context("__master is internal to check-reload")?;
            let config: segue::config::Config =
                serde_json::from_str(&json).context("bad master configuration")?;
            segue::logging::init(&config.worker.log);
            segue::logging::start_writers();
            let status = segue::master::run(config, Start::Fresh(Vec::new()))
                .context("segue cannot start")?;
            std::process::exit(status);
        }
        Command::CheckReload {
            serve,
            reloads,
            duration,
            strategy,
            url,
            concurrency,
            json_file,
            junit,
            html,
        } => {
            let inv = Invocation::current(serve);
            let mut config = match segue::config::load(&inv) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("segue check-reload: {e}");
                    std::process::exit(2);
                }
            };
            if let Some(s) = strategy {
                config.reload_strategy = s;
            }
            let urls = if url.is_empty() {
                vec!["/".to_string()]
            } else {
                url
            };
            if let Some(bad) = urls.iter().find(|u| !u.starts_with('/')) {
                anyhow::bail!(
                    "--url '{bad}' must be a path starting with '/' (check-reload only talks to 127.0.0.1)"
                );
            }
            let duration = Duration::try_from_secs_f64(duration)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--duration must be a positive number of seconds")?;
            let plan = segue::check::Plan {
                reloads,
                duration,
                urls,
                concurrency,
                json: json_file,
                junit,
                html,
            };
            let code = segue::check::run(config, plan)?;
            std::process::exit(code);
        }
        Command::Top {
            interval,
            iterations,
            control,
        } => {
            let interval = Duration::try_from_secs_f64(interval)
                .context("--interval must be a positive number of seconds")?;
            segue::control::top::run(&control, interval, iterations)?;
            return Ok(());
        }
        Command::Reload {
            strategy,
            wait,
            timeout,
            quiet,
            control,
        } if wait && !quiet => {
            let timeout = Duration::try_from_secs_f64(timeout)
                .context("--timeout must be a positive number of seconds")?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let watcher = segue::control::progress::watch(
                control.control.clone(),
                stop.clone(),
                std::io::stderr(),
            );
            let reply = client::call(
                &control.control,
                &Request::Reload { strategy, wait },
                timeout,
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = watcher.join();
            let mut printer = client::Printer::stdio(control.json);
            let code = printer.reply(&reply?);
            std::process::exit(printer.finish(code));
        }
        Command::Reload {
            strategy,
            wait,
            timeout,
            control,
            ..
        } => (Request::Reload { strategy, wait }, control, timeout),
        Command::Status { control } => (Request::Status, control, 10.0),
        Command::Stop { control } => (Request::Stop, control, 10.0),
        Command::Workers { delta, control } => {
            let delta = match delta.as_str() {
                "+1" | "1" => 1,
                "-1" => -1,
                other => anyhow::bail!("segue workers takes +1 or -1, not '{other}'"),
            };
            (Request::Workers { delta }, control, 10.0)
        }
    };
    let ControlArgs { control, json } = control;
    let timeout = Duration::try_from_secs_f64(timeout)
        .context("--timeout must be a positive number of seconds")?;
    let reply = client::call(&control, &request, timeout)?;
    // Through a fallible printer: a closed pipe or a full disk is an exit code, not a panic.
    let mut printer = client::Printer::stdio(json);
    let code = printer.reply(&reply);
    std::process::exit(printer.finish(code));
}

/// Splits check-reload's words into its own flags and the serving options.
fn split_check_reload(words: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut own, mut serve) = (Vec::new(), Vec::new());
    let mut words = words.iter();
    while let Some(w) = words.next() {
        let name = w.split('=').next().unwrap_or(w);
        if CHECK_RELOAD_VALUES.contains(&name) || w == "--help" || w == "-h" {
            own.push(w.clone());
            if !w.contains('=') && w != "--help" && w != "-h" {
                own.extend(words.next().cloned());
            }
        } else {
            serve.push(w.clone());
        }
    }
    (own, serve)
}

/// Serving: resolve every configuration source, print or check it if asked, then run the
/// master. Returns the exit status: 2 for a configuration segue cannot use.
fn serve(
    args: Vec<String>,
    handover: Option<Result<segue::master::upgrade::Handover, String>>,
) -> i32 {
    let options_part = args.iter().take_while(|a| *a != "--");
    for a in options_part {
        match a.as_str() {
            "--help" | "-h" => {
                print!("{}", segue::config::help::text());
                return 0;
            }
            "--version" | "-v" | "-V" => {
                println!("segue {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            _ => {}
        }
    }
    // Before any thread exists: this edits the environment.
    let start = match handover {
        Some(Ok(h)) => Start::Upgraded(h),
        Some(Err(why)) => {
            eprintln!("segue: in-place upgrade failed in the new binary: {why}");
            return 1;
        }
        None => Start::Fresh(segue::systemd::take_listen_fds()),
    };
    let inv = Invocation::current(args);
    let resolved = match segue::config::resolve::resolve(&inv) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("segue: {e}");
            return 2;
        }
    };
    if resolved.flag("print-config") {
        let doc = segue::config::report::print_config(&resolved);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        return match writeln!(std::io::stdout(), "{text}") {
            Ok(()) => 0,
            Err(_) => 1,
        };
    }
    if let Some(emperor) = resolved.emperor() {
        return run_emperor(emperor, &resolved);
    }
    let mut config = match resolved.config() {
        Ok(c) => c,
        Err(refusal) => {
            eprintln!("segue cannot start: {refusal}");
            return 2;
        }
    };
    if let Err(e) = segue::logging::check_files(&config.worker.log) {
        eprintln!("segue cannot start: {e}");
        return 2;
    }
    config.invocation = Some(inv);
    let check = resolved.flag("check-config");
    let start = if check {
        // Import the app once, as a worker would, and touch nothing the real server owns.
        config.listen = vec![segue::config::Endpoint::http(
            segue::config::ListenAddr::Tcp(([127, 0, 0, 1], 0).into()),
        )];
        config.listen_explicit = false;
        config.workers = 1;
        config.worker.multiprocess = false;
        config.control = None;
        config.pidfile = None;
        config.master_fifo = None;
        config.touch_reload = None;
        config.invocation = None;
        config.exit_when_ready = true;
        Start::Fresh(Vec::new())
    } else {
        start
    };
    segue::logging::init(&config.worker.log);
    segue::logging::start_writers();
    log_notes(&resolved);
    for u in resolved.unknown.iter().filter(|u| !u.fatal) {
        tracing::warn!(
            "{}: {}: not a gunicorn setting; ignored, as gunicorn ignores it",
            u.source,
            u.option
        );
    }
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!("{}", segue::config::report::summary(&config, &resolved));
    match segue::master::run(config, start) {
        Ok(0) if check => {
            println!("segue --check-config: the app loads");
            0
        }
        Ok(_) if check => 1,
        Ok(status) => status,
        Err(e) => {
            eprintln!("segue cannot start: {e:#}");
            1
        }
    }
}

/// Emperor mode (`--emperor DIR` and no app): supervise a segue per vassal file.
fn run_emperor(
    emperor: Result<segue::config::EmperorConfig, segue::config::build::Refusal>,
    resolved: &segue::config::resolve::Resolved,
) -> i32 {
    let config = match emperor {
        Ok(c) => c,
        Err(refusal) => {
            eprintln!("segue cannot start the emperor: {refusal}");
            return 2;
        }
    };
    if resolved.flag("check-config") {
        println!(
            "segue --check-config: the emperor's settings are valid (check each vassal file with segue --check-config --ini FILE)"
        );
        return 0;
    }
    segue::logging::init(&config.log);
    segue::logging::start_writers();
    log_notes(resolved);
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    match segue::emperor::run(config) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("segue cannot start the emperor: {e:#}");
            1
        }
    }
}

/// Logs what the configuration implied and what `--ignore-unsupported` dropped.
fn log_notes(resolved: &segue::config::resolve::Resolved) {
    for n in &resolved.implied {
        tracing::info!("{}: {}: implied: {}", n.source, n.option, n.note);
    }
    for n in &resolved.unsupported {
        tracing::warn!(
            "{}: {}: not supported, ignored (--ignore-unsupported): {}",
            n.source,
            n.option,
            n.note
        );
    }
}
