//! Fuzz target: reading the client from `Forwarded`/`X-Forwarded-For` (`tugboat::endpoint::fuzz_client_address`) must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::endpoint::fuzz_client_address(data));
