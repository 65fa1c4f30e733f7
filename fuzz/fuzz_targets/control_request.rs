//! The `--control` socket's JSON (`segue::control::messages`): the request line a client sends,
//! parsed as the master's control server parses it (`serde_json::from_slice` of the line), and
//! the reply line the CLI parses.
//!
//! Input: a selector byte, then a line. Invariants:
//! - a request that parses, written back as the CLI writes it, parses to the same request, and
//!   becomes a master `Command` without panicking;
//! - likewise for a reply, written as the master writes it and read as the CLI reads it.
#![cfg_attr(feature = "libfuzzer", no_main)]

use segue::control::messages::{Reply, Request};
use segue::master::command::Command;

segue_fuzz::fuzz_target!(|data| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The server reads up to the first newline; the line keeps it.
    let line = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => &rest[..=end],
        None => rest,
    };
    if selector % 2 == 0 {
        let Ok(request) = serde_json::from_slice::<Request>(line) else {
            return;
        };
        let value = serde_json::to_value(&request).unwrap();
        let sent = serde_json::to_vec(&request).expect("a request serializes");
        let back: Request = serde_json::from_slice(&sent).expect("a written request parses");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            value,
            "request round trip"
        );
        let _ = Command::from(request);
    } else {
        let Ok(reply) = serde_json::from_slice::<Reply>(line) else {
            return;
        };
        let value = serde_json::to_value(&reply).unwrap();
        let sent = serde_json::to_string(&reply).expect("a reply serializes");
        let back: Reply = serde_json::from_str(&sent).expect("a written reply parses");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            value,
            "reply round trip"
        );
    }
});
