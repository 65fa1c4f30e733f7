//! The control socket (`--control PATH`): how `segue reload`, `status`, `stop` and `workers`
//! talk to a running master. One JSON request per connection, one JSON reply; a `reload --wait`
//! reply comes only when the reload has finished, so a deploy script learns whether it worked.

pub mod client;
pub mod messages;
pub mod metrics;
pub mod progress;
pub mod server;
pub mod stats;
pub mod top;

pub use messages::{
    CheaperReport, CrashLoop, CronReport, DaemonReport, ReloadReport, Reply, Request,
    ScalingReport, StatusReport, WorkerReport,
};
