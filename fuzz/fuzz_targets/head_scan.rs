//! The raw-head scanner (`segue::http::framing`) against hyper's view of the same stream
//! (`segue_fuzz::hyper_view`: httparse and hyper's framing rules, written independently).
//!
//! Input: a split seed, a field limit, then the bytes a client sends on one connection; the
//! same input also builds a stream from a request grammar (`segue_fuzz::requests`), checked
//! the same way. Invariants:
//! - every head hyper would hand to the service gets exactly the verdict segue's rules give it,
//!   in order: the scanner finds each head where httparse does and skips each body where hyper
//!   does (a wrong boundary would hand one request another's verdict);
//! - after a verdict that closes the connection, or where the stream ends, nothing more;
//! - a head hyper must not see is cut exactly where it starts, with the stand-in head; or, when
//!   hyper already holds part of it, inside it, with the spoiling byte;
//! - the same stream in other reads (random splits, one byte at a time) gets the same verdicts.
#![cfg_attr(feature = "libfuzzer", no_main)]

use arbitrary::{Arbitrary, Unstructured};
use segue::http::framing::{HeadScanner, HeadVerdict, Pass, STAND_IN};
use segue_fuzz::hyper_view::{self, End, Expected};
use segue_fuzz::requests::Stream;
use segue_fuzz::split;

/// Large enough that no fuzz input reaches it (hyper's buffer limit is tested apart).
const MAX_HEAD: usize = 1 << 20;

segue_fuzz::fuzz_target!(|data| {
    let Some((&[seed, fields], raw)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_headers = usize::from(fields % 32) + 1;
    check_stream(raw, seed, max_headers);
    if let Ok(stream) = Stream::arbitrary(&mut Unstructured::new(raw)) {
        check_stream(&stream.bytes(), seed, max_headers);
    }
});

fn check_stream(stream: &[u8], seed: u8, max_headers: usize) {
    let expected = hyper_view::expect(stream, max_headers);
    let whole = scan(stream, &[stream.len()], max_headers);
    check(&expected, &whole, "whole");
    if let Some((_, then)) = whole.cut {
        assert_eq!(then, STAND_IN, "a head read whole is cut with the stand-in");
    }
    for (name, reads) in [
        ("split", split::reads(u64::from(seed), stream.len())),
        ("bytes", vec![1; stream.len()]),
    ] {
        let run = scan(stream, &reads, max_headers);
        check(&expected, &run, name);
        assert_eq!(
            run.statuses, whole.statuses,
            "{name}: verdicts depend on the reads"
        );
        assert_eq!(
            run.cut.is_some(),
            whole.cut.is_some(),
            "{name}: cut depends on the reads"
        );
    }
}

/// What the scanner said about a stream read in pieces of `reads` bytes.
struct Run {
    statuses: Vec<u16>,
    /// Where the stream was cut (an offset into it) and what replaced the rest.
    cut: Option<(usize, &'static [u8])>,
}

fn scan(stream: &[u8], reads: &[usize], max_headers: usize) -> Run {
    let mut scanner = HeadScanner::new(max_headers, MAX_HEAD);
    let (mut offset, mut cut) = (0, None);
    for &n in reads {
        if n == 0 {
            continue;
        }
        let read = &stream[offset..offset + n];
        if let Pass::Cut { at, then } = scanner.feed(read) {
            assert!(at <= read.len(), "cut past the read: {at} > {}", read.len());
            cut = Some((offset + at, then));
            break; // the connection's reader hands hyper nothing more
        }
        offset += n;
    }
    let statuses = (0..scanner.queued())
        .map(|_| match scanner.next_verdict() {
            HeadVerdict::Clean => 200,
            HeadVerdict::Refused(r) => r.status.as_u16(),
        })
        .collect();
    Run { statuses, cut }
}

fn check(expected: &Expected, run: &Run, how: &str) {
    let n = expected.statuses.len();
    assert!(
        run.statuses.len() >= n && run.statuses[..n] == expected.statuses[..],
        "{how}: verdicts {:?}, hyper's view {expected:?}",
        run.statuses
    );
    match expected.end {
        End::Complete | End::Incomplete | End::Refused => {
            assert_eq!(
                run.statuses.len(),
                n,
                "{how}: verdicts beyond hyper's requests"
            );
            assert_eq!(run.cut, None, "{how}: cut a stream hyper may see whole");
        }
        End::Cut(start) => {
            assert_eq!(run.statuses.len(), n, "{how}: verdicts after the cut");
            let Some((at, then)) = run.cut else {
                panic!("{how}: no cut for the head at {start}: {expected:?}");
            };
            if then == STAND_IN {
                assert_eq!(at, start, "{how}: stand-in not where the head starts");
            } else {
                assert_eq!(then, b"\0", "{how}: unknown replacement");
                let head = &expected.heads[n - 1];
                assert!(
                    start < at && at < head.end,
                    "{how}: spoiled at {at}, outside the head {head:?}"
                );
            }
        }
        // hyper closes the connection on this head: what the scanner says from here on does
        // not matter, but it must not cut the stream before the head.
        End::Rejected(start) => {
            if let Some((at, _)) = run.cut {
                assert!(
                    at >= start,
                    "{how}: cut at {at}, before the head at {start}"
                );
            }
        }
    }
}
