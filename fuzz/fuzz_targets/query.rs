//! Fuzz target: `tugboat::trigger::fuzz_query` must never panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::trigger::fuzz_query(data));
