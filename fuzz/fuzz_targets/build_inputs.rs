//! Fuzz target: what a repository gives the build phase (kustomizations, Helm values;
//! `tugboat::build::fuzz_build`) must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tugboat::build::fuzz_build(data));
