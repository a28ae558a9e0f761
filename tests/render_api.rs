//! The rest of the public API: reading files, listing placeholders, limits, YAML output, fuzz entry.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde_json::json;
use tugboat::render::{
    Budget, MAX_DEPTH, ManifestFile, RenderError, fuzz_render, identity_variables, placeholders, read_manifests,
    render, render_within, to_yaml_stream,
};

fn file(content: &str) -> ManifestFile {
    ManifestFile { path: "f.yaml".to_owned(), content: content.to_owned() }
}

fn no_vars() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tugboat-render-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, relative: &str, content: &[u8]) {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn reads_directory_sorted_filtered() {
    let dir = TempDir::new("read");
    dir.write("b.yaml", b"b");
    dir.write("a/z.yml", b"z");
    dir.write("a/c.json", b"{}");
    dir.write("a/readme.md", b"no");
    dir.write(".git/config.yaml", b"hidden dir");
    dir.write("sub/.hidden.yaml", b"hidden file");
    dir.write("UPPER.YAML", b"u");
    let files = read_manifests(&dir.0).unwrap();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["UPPER.YAML", "a/c.json", "a/z.yml", "b.yaml"]);
    assert_eq!(files[3].content, "b");
}

#[test]
fn reads_single_file_and_rejects_non_utf8() {
    let dir = TempDir::new("single");
    dir.write("one.txt", b"apiVersion: v1");
    let files = read_manifests(&dir.0.join("one.txt")).unwrap();
    assert_eq!(files, [ManifestFile { path: "one.txt".to_owned(), content: "apiVersion: v1".to_owned() }]);

    dir.write("x/bad.yaml", b"a: \xff\xfe");
    let err = read_manifests(&dir.0).unwrap_err();
    assert!(matches!(&err, RenderError::NotUtf8 { path } if path == "x/bad.yaml"), "{err}");
    assert_eq!(err.to_string(), "x/bad.yaml: file is not valid utf-8");

    let err = read_manifests(&dir.0.join("missing")).unwrap_err();
    assert!(matches!(err, RenderError::Io { .. }));
}

#[test]
fn placeholders_lists_names_from_scalars_and_keys_only() {
    let files = [
        file("a: ${A}\n${KEY}: x-${B:-d}-${C:=e}\n# ${IN_COMMENT}\nesc: $${ESCAPED}\nbare: $BARE\n"),
        file("---\nl: [${D}, \"${A}\"]\n---\n"),
    ];
    let names: Vec<_> = placeholders(&files).unwrap().into_iter().collect();
    assert_eq!(names, ["A", "B", "C", "D", "KEY"]);

    let err = placeholders(&[file("a: 1\n---\nb: ${9}\n")]).unwrap_err();
    assert_eq!((err.document(), err.line()), (Some(2), Some(3)));
}

#[test]
fn depth_is_capped() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let ok = format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\nv: {}\n", deep(MAX_DEPTH - 2));
    assert!(render(&[file(&ok)], &no_vars(), true).is_ok());
    for n in [MAX_DEPTH, 10_000] {
        let content = format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\nv: {}\n", deep(n));
        let err = render(&[file(&content)], &no_vars(), true).unwrap_err();
        assert!(matches!(err, RenderError::Invalid { .. } | RenderError::Syntax { .. }), "{err}");
    }
    let block: String = (0..1000).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    assert!(render(&[file(&block)], &no_vars(), true).is_err());
}

/// A 1 MiB anchored string behind 1,000 aliases: 1 GiB if copied, refused by the byte budget
/// at the alias that would go over, naming the file and line.
#[test]
fn a_long_anchored_string_behind_many_aliases_is_over_the_byte_budget() {
    let mut content =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata:\n  big: &big {}\n", "x".repeat(1 << 20));
    for i in 0..1000 {
        content.push_str(&format!("  copy{i}: *big\n"));
    }
    let files = [ManifestFile { path: "deploy/bomb.yaml".to_owned(), content }];
    let err = render(&files, &no_vars(), true).unwrap_err();
    assert!(matches!(err, RenderError::OverBudget { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("deploy/bomb.yaml: document 1, line "), "{message}");
    assert!(message.contains("more than 64 MiB") && message.contains("--render-max-bytes"), "{message}");
    // Around 64 copies fit in 64 MiB: the refusal comes at the alias that goes over.
    let line = err.line().expect("a line");
    assert!((60..=75).contains(&line), "refused at line {line}");
}

/// Substitution multiplies too: one long value behind many placeholders is checked before the
/// string is built.
#[test]
fn a_long_value_behind_many_placeholders_is_over_the_byte_budget() {
    let placeholders = "${V}".repeat(10_000);
    let content =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata:\n  many: \"{placeholders}\"\n");
    let vars = BTreeMap::from([("V".to_owned(), "y".repeat(1 << 20))]);
    let err = render(&[file(&content)], &vars, true).unwrap_err();
    assert!(matches!(err, RenderError::OverBudget { .. }), "{err:?}");
    assert!(err.to_string().starts_with("f.yaml: document 1, line 5: "), "{err}");
    // The same manifests with a short value are fine.
    let vars = BTreeMap::from([("V".to_owned(), "y".to_owned())]);
    assert!(render(&[file(&content)], &vars, true).is_ok());
}

/// The budget is one per application: documents and files share it, and objects are counted.
#[test]
fn the_budget_is_shared_by_every_file_and_counts_objects() {
    let object = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: {}}}\n", "z".repeat(400))
    };
    let files: Vec<ManifestFile> =
        (0..3).map(|i| ManifestFile { path: format!("f{i}.yaml"), content: object(&format!("c{i}")) }).collect();
    let roomy = Budget { max_bytes: 10_000, max_objects: 3 };
    assert_eq!(render_within(&files, &no_vars(), true, roomy).unwrap().objects.len(), 3);
    // Each file alone fits 1,000 bytes; all three do not.
    let err = render_within(&files, &no_vars(), true, Budget { max_bytes: 1_000, ..roomy }).unwrap_err();
    assert!(matches!(err, RenderError::OverBudget { .. }), "{err:?}");
    assert!(err.to_string().starts_with("f1.yaml") || err.to_string().starts_with("f2.yaml"), "{err}");
    let err = render_within(&files, &no_vars(), true, Budget { max_objects: 2, ..roomy }).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("f2.yaml: document 1, line 1: ") && message.contains("more than 2 objects"),
        "{message}"
    );
    assert!(message.contains("--render-max-objects"), "{message}");
}

#[test]
fn aliases_cannot_explode() {
    let mut content =
        String::from("apiVersion: v1\nkind: A\nmetadata: {name: a}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        content.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let err = render(&[file(&content)], &no_vars(), true).unwrap_err();
    assert!(err.to_string().contains("aliases expand"), "{err}");

    // Aliases nested through each other cannot exceed the depth cap either.
    let mut content = String::from("apiVersion: v1\nkind: A\nmetadata: {name: a}\n");
    content.push_str(&format!("a0: &a0 {}x{}\n", "[".repeat(150), "]".repeat(150)));
    content.push_str("a1: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n");
    let err = render(&[file(&content)], &no_vars(), true).unwrap_err();
    assert!(err.to_string().contains("nesting deeper"), "{err}");
}

#[test]
fn yaml_stream_round_trips() {
    let content = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  s: \"3\"\n  b: \"true\"\n  m: \"x\\ny: z\\n\"\n  e: \"\"\n  n: \"null\"\n  h: \"# c\"\nspec: {n: 3, f: 1.5, t: true, z: null, l: [1, [2], {}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n";
    let rendered = render(&[file(content)], &no_vars(), true).unwrap();
    let stream = to_yaml_stream(&rendered.objects);
    assert!(stream.starts_with("---\n# source: f.yaml, document 1\n"), "{stream}");
    let again = render(&[file(&stream)], &no_vars(), true).unwrap();
    let values = |r: &tugboat::render::Rendered| r.objects.iter().map(|o| o.value.clone()).collect::<Vec<_>>();
    assert_eq!(values(&again), values(&rendered));
    assert_eq!(again.objects[0].value.pointer("/data/b"), Some(&json!("true")));
}

#[test]
fn fuzz_entry_point_smoke() {
    fuzz_render(b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ${N}}\nspec: {template: {spec: {containers: [{image: a, env: [{name: N}]}]}}}\0N=x\ny: 1\0bad");
    fuzz_render(b"\xff\xfe${\0\0=");
    fuzz_render(&[b'['; 5000]);
}

#[test]
fn variables_that_reach_an_identity_field_are_found_with_the_field_and_no_others() {
    let files = [
        file(
            "apiVersion: ${GROUP:-apps}/v1\nkind: Deployment\nmetadata:\n  name: web-${SUFFIX}\n  namespace: \"${NS:-team-a}\"\n  labels: {tier: ${TIER}}\nspec:\n  replicas: ${REPLICAS:-2}\n",
        ),
        ManifestFile {
            path: "b.yaml".to_owned(),
            content: "apiVersion: v1\nkind: ${KIND:-ConfigMap}\nmetadata: {name: cfg}\ndata: {tag: \"${TAG}\", ns: \"${NS}\"}\n".to_owned(),
        },
    ];
    let found = identity_variables(&files).expect("renders");
    let want: BTreeMap<String, String> = [
        ("GROUP", "f.yaml#1 apiVersion"),
        ("KIND", "b.yaml#1 kind"),
        ("NS", "f.yaml#1 metadata.namespace"),
        ("SUFFIX", "f.yaml#1 metadata.name"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(found, want, "TIER, REPLICAS and TAG only set values");
    assert!(
        identity_variables(&[file("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")])
            .expect("renders")
            .is_empty()
    );
}
