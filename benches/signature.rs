//! GitHub signature verification of a 7 KB push payload: the per-request cost of the check.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use tugboat::trigger::Provider;
use tugboat::trigger::signature::{hmac_sha256_hex, verify};

fn github_7kb(c: &mut Criterion) {
    let secret = b"a-webhook-secret-of-realistic-length-0123456789";
    let fixture = include_bytes!("../tests/payloads/github_push.json");
    let body: Vec<u8> = fixture.iter().copied().cycle().take(7 * 1024).collect();
    let mut headers = HeaderMap::new();
    let signature = format!("sha256={}", hmac_sha256_hex(secret, &body));
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert("x-hub-signature-256", value);
    }
    let now = jiff::Timestamp::now();
    let mut group = c.benchmark_group("signature");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("github_7kb", |b| {
        b.iter(|| verify(Provider::Github, black_box(secret), black_box(&headers), black_box(&body), now))
    });
    group.finish();
}

criterion_group!(benches, github_7kb);
criterion_main!(benches);
