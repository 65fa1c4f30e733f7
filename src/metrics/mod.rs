//! Metrics for Prometheus (`--metrics ADDR`): histograms that workers fill without locks and
//! the master merges ([`histogram`]), and the text exposition the master serves
//! ([`exposition`]). The listener itself is in `control::metrics`.

pub mod exposition;
pub mod histogram;
