//! mdevctl definition files: any bytes parse or fail with an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = hostdev_model::MdevConfig::from_json(data) {
        let text = hostdev_model::format::definition_file(&c);
        assert_eq!(hostdev_model::MdevConfig::from_json(text.as_bytes()).ok(), Some(c));
    }
});
