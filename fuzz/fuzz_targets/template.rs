//! libFuzzer driver of the `template` target: `ergon_fuzz::template::target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ergon_fuzz::template::target(data));
