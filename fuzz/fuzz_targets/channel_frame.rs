//! The master/worker channel's frames (`segue::protocol`): what either side reads from its end
//! of the socketpair, and the `Boot` frame a worker reads first.
//!
//! Input: a selector byte, then bytes arriving on a channel (`ToMaster` or `ToWorker` frames),
//! or a `Boot` frame's body with 0 to 3 descriptors attached. Invariants:
//! - the socketless decoder (`decode_frame`) and the real channel (`Reader::recv` over a unix
//!   socketpair) read the same messages from the same bytes, and stop with the same error;
//! - every message read, written back (`encode_frame`), reads back the same;
//! - a length prefix over the limit is refused before anything is read for it;
//! - a `Boot` is accepted only with the protocol version, exactly as many descriptors as its
//!   manifest names, no role twice; each listener it names can be taken once, and no more.
#![cfg_attr(feature = "libfuzzer", no_main)]

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use segue::protocol::{
    Channel, FdRole, FrameError, PROTOCOL_VERSION, ToMaster, ToWorker, decode_boot, decode_frame,
    encode_frame,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

segue_fuzz::fuzz_target!(|data| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => frames::<ToMaster>(rest),
        1 => frames::<ToWorker>(rest),
        _ => boot(selector / 3 % 4, rest),
    }
});

/// What reading `bytes` as a stream of `T` frames gives: the messages (as JSON values), then
/// the error that stopped it, by kind.
fn frames<T: DeserializeOwned + Serialize + Send + 'static>(bytes: &[u8]) {
    let mut decoded = Vec::new();
    let mut rest = bytes;
    let stop = loop {
        if rest.len() >= 4 && u32::from_be_bytes(rest[..4].try_into().unwrap()) > 1 << 20 {
            let refused = decode_frame::<T>(rest);
            assert!(
                matches!(refused, Err(FrameError::TooLarge(_))),
                "oversized prefix"
            );
        }
        match decode_frame::<T>(rest) {
            Ok((msg, after)) => {
                let value = serde_json::to_value(&msg).expect("a message serializes");
                let again = encode_frame(&msg).expect("a message encodes");
                let (back, tail) = decode_frame::<T>(&again).expect("an encoded message decodes");
                assert!(tail.is_empty());
                assert_eq!(serde_json::to_value(&back).unwrap(), value, "round trip");
                decoded.push(value);
                rest = after;
            }
            Err(e) => break kind(&e),
        }
    };
    let (read, read_stop) = runtime().block_on(read_channel::<T>(bytes.to_vec()));
    assert_eq!(
        read, decoded,
        "the channel and the decoder read different messages"
    );
    assert_eq!(
        read_stop, stop,
        "the channel and the decoder stop differently"
    );
}

/// The same bytes through a real channel: written to one end of a socketpair, which is then
/// closed, and read from the other with `Reader::recv` until it fails.
async fn read_channel<T: DeserializeOwned + Serialize + Send + 'static>(
    bytes: Vec<u8>,
) -> (Vec<serde_json::Value>, &'static str) {
    use tokio::io::AsyncWriteExt;
    let (mut ours, theirs) = tokio::net::UnixStream::pair().expect("socketpair");
    ours.write_all(&bytes)
        .await
        .expect("the socket buffer holds a fuzz input");
    drop(ours);
    let (mut reader, _writer) = Channel::<T, ToMaster>::new(theirs).split();
    let mut read = Vec::new();
    loop {
        match reader.recv().await {
            Ok(msg) => read.push(serde_json::to_value(&msg).unwrap()),
            Err(e) => return (read, kind(&e)),
        }
    }
}

fn kind(e: &FrameError) -> &'static str {
    match e {
        FrameError::Closed => "closed",
        FrameError::TooLarge(_) => "too large",
        FrameError::Decode(_) => "decode",
        other => panic!("a frame read failed unexpectedly: {other}"),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime")
    })
}

/// A `Boot` body with `n` descriptors (of /dev/null) attached.
fn boot(n: u8, body: &[u8]) {
    let fds: Vec<OwnedFd> = (0..n)
        .map(|_| std::fs::File::open("/dev/null").expect("/dev/null").into())
        .collect();
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let manifest: Option<Vec<FdRole>> = value
        .as_ref()
        .and_then(|v| serde_json::from_value(v.get("fds")?.clone()).ok());
    match decode_boot(body, fds) {
        Ok((boot, mut fds)) => {
            let manifest = manifest.expect("an accepted Boot has a manifest");
            assert_eq!(boot.protocol, PROTOCOL_VERSION);
            assert_eq!(manifest.len(), usize::from(n), "descriptor count");
            for (i, role) in manifest.iter().enumerate() {
                assert!(!manifest[..i].contains(role), "{role} twice");
            }
            let wanted = boot.listeners.len();
            let listeners = fds.take_listeners(boot.listeners.clone());
            let all_named = (0..wanted).all(|i| manifest.contains(&FdRole::Listener(i)));
            assert_eq!(
                listeners.is_ok(),
                all_named,
                "listeners {wanted}, manifest {manifest:?}"
            );
            if listeners.is_ok() {
                for i in 0..wanted {
                    assert!(
                        fds.take(FdRole::Listener(i)).is_none(),
                        "listener {i} taken twice"
                    );
                }
            }
            // What the master would send for it reads back the same.
            let frame = encode_frame(&ToWorker::Boot {
                fds: manifest.clone(),
                boot: Box::new(boot.clone()),
            })
            .unwrap();
            let again: Vec<OwnedFd> = (0..n)
                .map(|_| std::fs::File::open("/dev/null").unwrap().into())
                .collect();
            let (back, _) = decode_boot(&frame[4..], again).expect("a re-encoded Boot decodes");
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&boot).unwrap()
            );
        }
        Err(FrameError::Version { got }) => assert_ne!(got, PROTOCOL_VERSION),
        Err(FrameError::FdMismatch { expected, got }) => {
            assert_ne!(expected, got);
            assert_eq!(got, usize::from(n));
        }
        Err(FrameError::FdTwice(role)) => {
            let manifest = manifest.expect("a manifest named a role twice");
            assert!(manifest.iter().filter(|&&r| r == role).count() > 1);
        }
        Err(FrameError::Decode(_) | FrameError::NotBoot) => {}
        Err(other) => panic!("decode_boot failed unexpectedly: {other}"),
    }
}
