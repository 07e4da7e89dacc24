//! libFuzzer driver of the `file_lines` target: `ergon_fuzz::file_lines::target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ergon_fuzz::file_lines::target(data));
