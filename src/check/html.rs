//! `segue check-reload --html FILE`: the report as one self-contained page (no script or style
//! from elsewhere) with a timeline picture in SVG: requests per 100 ms by outcome, the slowest
//! request of each slice, and each reload's window with its generation, so a reviewer sees at a
//! glance whether anything failed and when.

use std::fmt::Write as _;

use super::report::{CheckReport, SLICE};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 50.0;
const BOTTOM: f64 = 30.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG timeline.
pub fn timeline_svg(r: &CheckReport) -> String {
    let plot_w = WIDTH - LEFT - 10.0;
    let plot_h = HEIGHT - BOTTOM - 20.0;
    let duration = r.duration_s.max(SLICE.as_secs_f64());
    let x = |s: f64| LEFT + s / duration * plot_w;
    let top = |v: f64, max: f64| 20.0 + plot_h - v / max.max(1.0) * plot_h;
    let most = r
        .timeline
        .iter()
        .map(|s| s.ok + s.failed)
        .max()
        .unwrap_or(1) as f64;
    let slowest = r.timeline.iter().map(|s| s.max_ms).fold(1.0, f64::max);
    let bar = (SLICE.as_secs_f64() / duration * plot_w).max(1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"timeline\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"requests and reloads over time\">\n"
    );
    // Reload windows over the bars, translucent, so they show at any height.
    let mut windows = String::new();
    for reload in &r.reloads {
        let end_ms = reload
            .old_gone_ms
            .or(reload.master.as_ref().map(|m| m.took_ms))
            .unwrap_or(0) as f64;
        let (x0, x1) = (x(reload.started_s), x(reload.started_s + end_ms / 1000.0));
        let generation = reload
            .master
            .as_ref()
            .map_or_else(|| "?".to_owned(), |m| m.generation.to_string());
        let class = if reload.error.is_some() {
            "reload-window failed"
        } else {
            "reload-window"
        };
        let _ = writeln!(
            windows,
            "<rect class=\"{class}\" data-reload=\"{}\" x=\"{x0:.1}\" y=\"20\" width=\"{:.1}\" height=\"{plot_h:.1}\" \
             fill=\"{}\" fill-opacity=\"0.35\"><title>reload {} to generation {generation}: {end_ms:.0} ms</title></rect>\
             <text x=\"{x0:.1}\" y=\"14\" font-size=\"11\" fill=\"#444\">reload {} \u{2192} gen {generation}</text>",
            reload.index,
            (x1 - x0).max(2.0),
            if reload.error.is_some() {
                "#d33"
            } else {
                "#36c"
            },
            reload.index,
            reload.index
        );
    }
    for s in &r.timeline {
        let x0 = x(s.at_s);
        let total = (s.ok + s.failed) as f64;
        let y_ok = top(total, most);
        let _ = writeln!(
            svg,
            "<rect class=\"ok\" x=\"{x0:.1}\" y=\"{y_ok:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"#3a3\"/>",
            top(s.failed as f64, most) - y_ok
        );
        if s.failed > 0 {
            let y_f = top(s.failed as f64, most);
            let _ = writeln!(
                svg,
                "<rect class=\"failed\" x=\"{x0:.1}\" y=\"{y_f:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"#d00\"/>",
                20.0 + plot_h - y_f
            );
        }
    }
    svg.push_str(&windows);
    // The slowest request per slice, on its own scale.
    let points: Vec<String> = r
        .timeline
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.at_s) + bar / 2.0, top(s.max_ms, slowest)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline class=\"latency\" points=\"{}\" fill=\"none\" stroke=\"#e80\" stroke-width=\"1.5\"/>",
        points.join(" ")
    );
    // Axes and labels.
    let base = 20.0 + plot_h;
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#000\"/>\
         <line x1=\"{LEFT}\" y1=\"20\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"#000\"/>\
         <text x=\"2\" y=\"28\" font-size=\"11\">{most:.0}/100ms</text>\
         <text x=\"{}\" y=\"28\" font-size=\"11\" fill=\"#e80\" text-anchor=\"end\">max {slowest:.1} ms</text>",
        WIDTH - 10.0,
        WIDTH - 12.0
    );
    let step = (duration / 10.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= duration + 1e-9 {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{t:.0}s</text>",
            x(t),
            base + 16.0
        );
        t += step;
    }
    svg.push_str("</svg>\n");
    svg
}

/// The whole page.
pub fn page(r: &CheckReport) -> String {
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let mut rows = String::new();
    for reload in &r.reloads {
        let generation = reload
            .master
            .as_ref()
            .map_or_else(|| "-".to_owned(), |m| m.generation.to_string());
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{:.1} s</td><td>{generation}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            reload.index,
            reload.started_s,
            reload
                .new_serving_ms
                .map_or("-".into(), |m| format!("{m} ms")),
            reload.old_gone_ms.map_or("-".into(), |m| format!("{m} ms")),
            reload.failed_requests,
            escape(reload.error.as_deref().unwrap_or("ok"))
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>segue check-reload: {verdict}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         .PASSED{{color:#383}}.FAILED{{color:#c00}}</style></head><body>\n\
         <h1 class=\"{verdict}\">check-reload {verdict}</h1>\n\
         <p>{app}, strategy {strategy}: {requests} requests over {duration:.1} s, {failed} failed; \
         latency p50 {sp50} ms / p99 {sp99} ms steady, p50 {dp50} ms / p99 {dp99} ms during reloads; \
         peak memory {rss} MiB.</p>\n\
         <p>Bars: requests sent per 100 ms (green answered, red failed). Orange: the slowest \
         request of each 100 ms. Shaded: each reload, from its start until the old generation was \
         gone.</p>\n{svg}\n\
         <table><tr><th>reload</th><th>at</th><th>generation</th><th>new serving</th><th>old gone</th>\
         <th>failed requests</th><th>result</th></tr>\n{rows}</table>\n\
         <script>addEventListener('load',function(){{var w=[].map.call(document.querySelectorAll(\
         '.reload-window'),function(r){{return Math.round(r.getBoundingClientRect().width)}});\
         document.body.setAttribute('data-reload-widths',w.join(','))}})</script>\n</body></html>\n",
        app = escape(&r.app),
        strategy = escape(&r.strategy),
        requests = r.requests,
        duration = r.duration_s,
        failed = r.failed,
        sp50 = r.steady.p50_ms,
        sp99 = r.steady.p99_ms,
        dp50 = r.during_reloads.p50_ms,
        dp99 = r.during_reloads.p99_ms,
        rss = r.peak_rss_mib,
        svg = timeline_svg(r),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::report::{Latency, ReloadCheck, Slice};

    fn report(failed_reload: bool) -> CheckReport {
        CheckReport {
            passed: !failed_reload,
            app: "shop<&>".into(),
            strategy: "chain".into(),
            duration_s: 1.0,
            requests: 30,
            failed: u64::from(failed_reload),
            failures_by_kind: Default::default(),
            steady: Latency::default(),
            during_reloads: Latency::default(),
            reloads: vec![ReloadCheck {
                index: 1,
                started_s: 0.5,
                new_serving_ms: Some(80),
                old_gone_ms: Some(100),
                failed_requests: u64::from(failed_reload),
                master: None,
                error: failed_reload.then(|| "rolled back: <boom>".into()),
            }],
            peak_rss_mib: 1.0,
            timeline: (0..10)
                .map(|i| Slice {
                    at_s: f64::from(i) / 10.0,
                    ok: 3,
                    failed: u64::from(failed_reload && i == 5),
                    max_ms: 1.0,
                    p50_ms: 0.5,
                })
                .collect(),
        }
    }

    #[test]
    fn a_window_per_reload_and_failures_in_red() {
        let ok = page(&report(false));
        assert_eq!(ok.matches("class=\"reload-window\"").count(), 1);
        assert!(!ok.contains("class=\"failed\""));
        assert!(ok.contains("shop&lt;&amp;&gt;"), "escaped");
        let bad = page(&report(true));
        assert!(bad.contains("class=\"reload-window failed\""));
        assert_eq!(bad.matches("class=\"failed\"").count(), 1);
        assert!(bad.contains("rolled back: &lt;boom&gt;"));
        assert!(bad.contains("check-reload FAILED"));
    }
}
