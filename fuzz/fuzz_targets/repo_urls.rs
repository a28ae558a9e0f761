//! Fuzz target: repository URL handling (`tugboat::trigger::fuzz_repo_urls`) must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::trigger::fuzz_repo_urls(data));
