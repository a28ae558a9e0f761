//! Fuzz target: outgoing webhook templates (`${...}` strings and JSON payload templates) must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::outgoing::template::fuzz_parse_and_render(data));
