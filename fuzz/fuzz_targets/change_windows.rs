//! Fuzz target: `tugboat::window::fuzz_compile_and_evaluate` must never panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::window::fuzz_compile_and_evaluate(data));
