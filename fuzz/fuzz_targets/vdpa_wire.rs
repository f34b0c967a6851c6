//! The vdpa netlink parsers must be total: any bytes decode or fail cleanly.
#![no_main]
use hostdev_vdpa::wire::{parse_datagram, parse_nlas, Reply};
use hostdev_vdpa::{Dev, LiveConfig, MgmtDev};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(replies) = parse_datagram(data) {
        for r in replies {
            if let Reply::Msg(m) = r {
                let _ = MgmtDev::from_nlas(&m.nlas);
                let _ = Dev::from_nlas(&m.nlas);
                let _ = LiveConfig::from_nlas_for(&m.nlas, (6, 12));
                // What parses re-emits to the same message.
                let again = parse_datagram(&m.emit()).expect("re-parse of emitted message");
                assert_eq!(again, vec![Reply::Msg(m)]);
            }
        }
    }
    let _ = parse_nlas(data);
});
