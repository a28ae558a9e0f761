//! Properties: no input panics, no value changes structure, and printed YAML reads back the same.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tugboat::render::{ManifestFile, RenderError, fuzz_render, placeholders, render, to_yaml_stream};

fn file(content: String) -> [ManifestFile; 1] {
    [ManifestFile { path: "p.yaml".to_owned(), content }]
}

/// Text built from YAML's meaningful characters, so the parser gets past the first byte.
fn yamlish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "a",
        "b",
        "0",
        "1.5",
        ":",
        ": ",
        "- ",
        "\n",
        "  ",
        "---\n",
        "...\n",
        "#",
        "'",
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        "&x ",
        "*x",
        "!!str ",
        "!t ",
        "|\n",
        ">\n",
        "? ",
        "<<: ",
        "${A}",
        "${B:-d}",
        "$${C}",
        "${",
        "}",
        "$",
        "\\",
        "\t",
        "%YAML 1.2\n",
        "\u{E000}0\u{E001}",
        "é",
        "apiVersion: v1\nkind: K\nmetadata:\n  name: n\n",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

/// Values meant to break out of a scalar if substitution happened before parsing.
fn nasty_value() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "x",
        "\n",
        ": ",
        "key: v",
        "---",
        "\n---\n",
        "...",
        "{a: b}",
        "[1]",
        "#",
        " # c",
        "'",
        "\"",
        "\\",
        "&a",
        "*a",
        "!!int",
        "|",
        ">",
        "- ",
        "${A}",
        "$${A}",
        "\u{E000}0\u{E001}",
        "\t",
        "%",
        "@",
        "`",
        "3",
        "true",
        "null",
        "",
    ]);
    prop_oneof![any::<String>(), prop::collection::vec(atoms, 0..12).prop_map(|parts| parts.concat())]
}

/// Replaces every leaf by null: what is left is the structure.
fn shape(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        _ => Value::Null,
    }
}

const TEMPLATE: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: t
  labels: {a: ${V}, b: \"${V}\"}
data:
  plain: ${V}
  mixed: x-${V}-y
  double: \"${V}\"
  single: '${V}'
  default: ${U:-${V}x}
  list: [${V}, '${V}', {k: ${V}}]
  block: |
    ${V}
  folded: >
    a ${V} b
  # ${V}: in a comment
spec:
  - ${V}
  - n: ${V}
";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(content in prop_oneof![any::<String>(), yamlish()], strict: bool) {
        let vars = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        let _ = render(&file(content.clone()), &vars, strict);
        let _ = placeholders(&file(content.clone()));
        fuzz_render(content.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_render(&bytes);
    }

    #[test]
    fn values_never_change_structure(value in nasty_value()) {
        // `${U:-${V}x}` is refused (nested default), so take it out for this property.
        let template = TEMPLATE.replace("  default: ${U:-${V}x}\n", "");
        let render_with = |v: &str| {
            let vars = BTreeMap::from([("V".to_owned(), v.to_owned())]);
            render(&file(template.clone()), &vars, true)
        };
        let reference = render_with("x").unwrap();
        let rendered = render_with(&value).unwrap();
        prop_assert_eq!(rendered.objects.len(), 1);
        prop_assert_eq!(shape(&rendered.objects[0].value), shape(&reference.objects[0].value));
        let data = &rendered.objects[0].value["data"];
        prop_assert_eq!(&data["mixed"], &json!(format!("x-{value}-y")));
        prop_assert_eq!(&data["double"], &json!(value));
        prop_assert_eq!(&data["list"][1], &json!(value));
    }

    #[test]
    fn values_in_keys_stay_one_key(value in nasty_value()) {
        let content = "apiVersion: v1\nkind: K\nmetadata: {name: n}\n${V}: 1\nother: 2\n".to_owned();
        let vars = BTreeMap::from([("V".to_owned(), value.clone())]);
        match render(&file(content), &vars, true) {
            Ok(rendered) => {
                let object = rendered.objects[0].value.as_object().unwrap();
                prop_assert_eq!(object.len(), 5);
                prop_assert_eq!(object.get(&value), Some(&json!(1)));
            }
            Err(RenderError::Invalid { message, .. }) => {
                prop_assert!(["apiVersion", "kind", "metadata", "other"].contains(&value.as_str()), "{}", message);
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn printed_yaml_reads_back(value in json_value(), name in "[a-z0-9.-]{1,20}") {
        let mut object = Map::new();
        object.insert("apiVersion".to_owned(), json!("v1"));
        object.insert("kind".to_owned(), json!("Thing"));
        object.insert("metadata".to_owned(), json!({"name": name}));
        object.insert("spec".to_owned(), value);
        let object = Value::Object(object);
        let printed = to_yaml_stream(&[tugboat::render::RenderedObject { file: "x\ny.yaml".to_owned(), document: 1, value: object.clone() }]);
        let back = render(&file(printed.clone()), &BTreeMap::new(), true);
        prop_assert!(back.is_ok(), "{:?}\n{}", back.err().map(|e| e.to_string()), printed);
        let back = back.unwrap();
        prop_assert_eq!(back.objects.len(), 1);
        prop_assert_eq!(&back.objects[0].value, &object, "{}", printed);
    }
}

/// JSON values without `$` in strings (a `${X}` in output is meant to be substituted again).
fn json_value() -> impl Strategy<Value = Value> {
    let text = "[^$]{0,12}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        text.prop_map(Value::String),
        prop::sample::select(vec![
            "true", "null", "~", "3", "0x1", "1e3", "-", "- a", "a: b", "#", "'", "\"", "", " a", "a\n", "\n\nb\n",
            "yes", ".inf"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
