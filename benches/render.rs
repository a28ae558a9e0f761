//! Renders 500 manifests (Deployment, Service, ConfigMap in turn, all with placeholders), and
//! one ConfigMap whose single line is 256 KiB, 1 MiB or 4 MiB of placeholders: each 4× longer
//! line should cost about 4× the time, showing substitution stays linear in the line's length.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tugboat::render::{ManifestFile, placeholders, render, to_yaml_stream};

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-${INDEX}
  namespace: ${NAMESPACE:-default}
  labels: {app: app-${INDEX}, team: "${TEAM}"}
spec:
  replicas: ${REPLICAS:-2}
  selector:
    matchLabels:
      app: app-${INDEX}
  template:
    metadata:
      labels:
        app: app-${INDEX}
    spec:
      containers:
        - name: app
          image: registry.local:5000/team/app:${TAG:-stable}
          ports:
            - containerPort: ${PORT:-8080}
          env:
            - name: LOG_LEVEL
              value: "${LOG_LEVEL:-info}"
            - name: FEATURE
              value: ${FEATURE:=off}
          resources:
            limits: {cpu: "${CPU:-500m}", memory: 256Mi}
"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: app-${INDEX}
  namespace: ${NAMESPACE:-default}
spec:
  selector:
    app: app-${INDEX}
  ports:
    - port: 80
      targetPort: ${PORT:-8080}
"#;

const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-${INDEX}-config
  namespace: ${NAMESPACE:-default}
data:
  # settings for ${INDEX}
  settings.yaml: |
    endpoint: https://${HOST:-example.com}/api
    retries: ${RETRIES:-3}
  greeting: "hello from ${TEAM}"
  escaped: $${NOT_A_VARIABLE}
"#;

fn manifests() -> Vec<ManifestFile> {
    (0..500)
        .map(|i| {
            let template = [DEPLOYMENT, SERVICE, CONFIGMAP][i % 3];
            ManifestFile { path: format!("apps/{i:03}.yaml"), content: template.replace("${INDEX}", &i.to_string()) }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let files = manifests();
    let vars: BTreeMap<String, String> =
        [("TEAM", "blue"), ("TAG", "1.4.2"), ("REPLICAS", "3"), ("LOG_LEVEL", "debug")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let rendered = render(&files, &vars, true).expect("bench manifests render");
    assert_eq!(rendered.objects.len(), 500);
    c.bench_function("render 500 manifests", |b| b.iter(|| render(black_box(&files), black_box(&vars), true)));
    c.bench_function("placeholders 500 manifests", |b| b.iter(|| placeholders(black_box(&files))));
    c.bench_function("to_yaml_stream 500 objects", |b| b.iter(|| to_yaml_stream(black_box(&rendered.objects))));
}

/// A ConfigMap with one double-quoted line of `count` 32-byte units, each with a placeholder.
fn long_line(count: usize) -> ManifestFile {
    let line: String = (0..count).map(|i| format!("abcdefghijklmnopqrstuvwxyz-${{V{}}}", i % 10)).collect();
    assert_eq!(line.len(), count * 32);
    ManifestFile {
        path: "long.yaml".into(),
        content: format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: long\ndata:\n  line: \"{line}\"\n"),
    }
}

fn bench_long_line(c: &mut Criterion) {
    let vars: BTreeMap<String, String> = (0..10).map(|i| (format!("V{i}"), "x".to_owned())).collect();
    let mut group = c.benchmark_group("long line");
    for (label, count) in [
        ("256 KiB, 8192 placeholders", 8192),
        ("1 MiB, 32768 placeholders", 32768),
        ("4 MiB, 131072 placeholders", 131_072),
    ] {
        let files = vec![long_line(count)];
        let rendered = render(&files, &vars, true).expect("the long line renders");
        let line = rendered.objects[0].value["data"]["line"].as_str().map(str::len);
        assert_eq!(line, Some(count * 28), "every placeholder filled with one byte");
        group.bench_function(label, |b| b.iter(|| render(black_box(&files), black_box(&vars), true)));
    }
    group.finish();
}

criterion_group!(benches, bench, bench_long_line);
criterion_main!(benches);
