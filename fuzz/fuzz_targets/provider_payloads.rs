//! Fuzz target: `tugboat::trigger::fuzz_event` must never panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::trigger::fuzz_event(data));
