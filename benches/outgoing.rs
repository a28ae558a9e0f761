//! Outgoing webhooks: the per-delivery CPU cost of rendering a templated request (URL, headers,
//! JSON payload, CloudEvents envelope) and of signing a 1 KiB body with Standard Webhooks.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tugboat::api::{EventData, EventType, OutgoingWebhookSpec};
use tugboat::outgoing::{hook, sign};

fn data() -> EventData {
    EventData {
        event: EventType::DeploymentFinished,
        triggered_at: "2026-01-01T00:00:00Z".into(),
        triggered_by: "Webhook/deploy (generic)".into(),
        app_id: "shop".into(),
        env_id: "prod".into(),
        deploy_id: Some("0123abcd-1767225600".into()),
        revision: Some("main@sha1:0123abcd0123abcd0123abcd0123abcd0123abcd".into()),
        previous_revision: Some("main@sha1:fedcba98fedcba98fedcba98fedcba98fedcba98".into()),
        status: Some("succeeded".into()),
        message: Some("applied revision main@sha1:0123abcd".into()),
        restarted: vec!["deployment/web".into()],
        variables: (0..10).map(|i| (format!("VAR_{i}"), format!("value-{i}"))).collect::<BTreeMap<_, _>>(),
        drifted: Vec::new(),
    }
}

fn outgoing(c: &mut Criterion) {
    let spec: OutgoingWebhookSpec = serde_json::from_value(serde_json::json!({
        "url": "https://ci.example.com/run?app=${app_id}&env=${env_id}&rev=${revision}",
        "headers": {"X-Env": "${env_id}", "X-Deploy": "${deploy_id}", "X-Tag": "${VAR_3:-none}"},
        "payload": {"app": "${app_id}", "status": "${status}", "revision": "${revision}",
                    "previous": "${previous_revision}", "by": "${triggered_by}", "vars": ["${VAR_1}", "${VAR_2}"]},
        "format": "cloudevents",
        "triggers": ["deployment.finished"],
    }))
    .unwrap_or_else(|e| panic!("spec: {e}"));
    let event = data();
    let body = vec![b'x'; 1024];
    let secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut group = c.benchmark_group("outgoing");
    group.bench_function("prepare_templated_cloudevent", |b| {
        b.iter(|| hook::prepare(black_box(&spec), black_box(&event), "msg_0123456789abcdef"))
    });
    group.bench_function("sign_1kib", |b| {
        b.iter(|| sign::headers(black_box(secret), "msg_0123456789abcdef", 1_767_225_600, black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, outgoing);
criterion_main!(benches);
