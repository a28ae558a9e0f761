//! Fuzz target: `tugboat::render::fuzz_render` must never panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::render::fuzz_render(data));
