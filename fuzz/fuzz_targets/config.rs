//! libFuzzer driver of the `config` target: `ergon_fuzz::config::target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ergon_fuzz::config::target(data));
