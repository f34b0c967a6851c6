//! The daemon's request decoding: any query string or body decodes into an
//! operation or fails with a sentence, never a panic; what decodes survives
//! its own wire form unchanged. Kernel event messages likewise.
#![no_main]
use hostdev_api::wire::{decode_request, request_parts};
use hostdev_api::{self as api, Op};
use libfuzzer_sys::fuzz_target;

fn one<O: Op + PartialEq + std::fmt::Debug>(query: Option<&str>, body: &[u8]) {
    if let Ok(op) = decode_request::<O>(query, body) {
        let (target, b) = request_parts(&op).expect("encodes");
        let q = target.split_once('?').map(|(_, q)| q);
        let back: O = decode_request(q, b.as_deref().unwrap_or_default()).expect("decodes again");
        assert_eq!(back, op);
    }
}

fuzz_target!(|data: &[u8]| {
    let query = std::str::from_utf8(data).ok();
    macro_rules! every {
        ($($t:ty),*) => { $(one::<$t>(query, data);)* };
    }
    api::with_every_op!(every);
    let _ = hostdev_uevent::Uevent::parse(data);
});
