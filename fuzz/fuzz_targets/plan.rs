//! libFuzzer driver of the `plan` target: `ergon_fuzz::plan::target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ergon_fuzz::plan::target(data));
