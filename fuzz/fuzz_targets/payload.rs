//! libFuzzer driver of the `payload` target: `ergon_fuzz::payload::target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ergon_fuzz::payload::target(data));
