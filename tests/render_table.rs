//! Flux-compatible substitution table, through the public API only.
//!
//! Each case is a manifest body appended to a 4-line object header (so body line 1 is file
//! line 5), variables, strictness, and the expected value at a JSON pointer or the expected
//! error with its document, line and variable.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tugboat::render::{ManifestFile, RenderError, render};

const HEADER: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\n";

enum Expect {
    /// The value at `/v`.
    V(Value),
    /// The value at a pointer.
    At(&'static str, Value),
    /// How many objects the file renders to.
    Objects(usize),
    /// An error of this kind ("missing", "invalid-placeholder", "unterminated", "syntax",
    /// "invalid") at document and line, with the variable for "missing".
    Err(&'static str, usize, usize),
}

struct Case {
    name: &'static str,
    /// Appended to HEADER, unless it starts with "RAW\n" (then used as the whole file).
    body: &'static str,
    vars: &'static [(&'static str, &'static str)],
    strict: bool,
    expect: Expect,
}

use Expect::*;

const fn case(
    name: &'static str,
    body: &'static str,
    vars: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Case {
    Case { name, body, vars, strict: false, expect }
}

const fn strict(
    name: &'static str,
    body: &'static str,
    vars: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Case {
    Case { name, body, vars, strict: true, expect }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // Plain values and defaults.
        case("set", "v: ${A}", &[("A", "x")], V(json!("x"))),
        case("unset non-strict plain is null", "v: ${A}", &[], V(json!(null))),
        case("unset non-strict quoted is empty", "v: \"${A}\"", &[], V(json!(""))),
        case("unset non-strict inside text", "v: a${A}b", &[], V(json!("ab"))),
        case(":- unset", "v: ${A:-d}", &[], V(json!("d"))),
        case(":- empty", "v: ${A:-d}", &[("A", "")], V(json!("d"))),
        case(":- set", "v: ${A:-d}", &[("A", "x")], V(json!("x"))),
        case(":= unset", "v: ${A:=d}", &[], V(json!("d"))),
        case(":= empty", "v: ${A:=d}", &[("A", "")], V(json!("d"))),
        case(":= set", "v: ${A:=d}", &[("A", "x")], V(json!("x"))),
        strict("empty default is a default", "v: \"${A:-}\"", &[], V(json!(""))),
        strict("set but empty is a value in strict", "v: \"${A}\"", &[("A", "")], V(json!(""))),
        case("default with colon and hash is literal", "v: ${A:-a: b #c}", &[], V(json!("a: b #c"))),
        case("default with spaces", "v: ${A:-hello world}", &[], V(json!("hello world"))),
        // Escapes and bare dollars.
        case("escape", "v: $${A}", &[("A", "x")], V(json!("${A}"))),
        case("escape quoted with default", "v: \"$${A:-x}\"", &[], V(json!("${A:-x}"))),
        case("bare $VAR left alone", "v: $A", &[("A", "x")], V(json!("$A"))),
        case("kubernetes $(VAR) left alone", "v: $(A)", &[("A", "x")], V(json!("$(A)"))),
        case("lone dollar", "v: a$ b$$", &[], V(json!("a$ b$$"))),
        // Adjacent and embedded.
        case("adjacent", "v: ${A}${B}", &[("A", "1"), ("B", "2")], V(json!("12"))),
        case("embedded image tag default", "v: repo/app:${TAG:-stable}", &[], V(json!("repo/app:stable"))),
        case("embedded image tag set", "v: repo/app:${TAG:-stable}", &[("TAG", "1.2")], V(json!("repo/app:1.2"))),
        case("prefix text", "v: app-${N}", &[("N", "3")], V(json!("app-3"))),
        case("values are not re-scanned", "v: ${A}", &[("A", "${B}"), ("B", "x")], V(json!("${B}"))),
        // Typing of a plain scalar that is exactly one placeholder.
        case("typed int default", "v: ${N:-2}", &[], V(json!(2))),
        case("typed negative int", "v: ${N}", &[("N", "-5")], V(json!(-5))),
        case("typed hex", "v: ${N}", &[("N", "0x10")], V(json!(16))),
        case("typed octal", "v: ${N}", &[("N", "0o10")], V(json!(8))),
        case("typed float", "v: ${N}", &[("N", "1.5")], V(json!(1.5))),
        case("typed true", "v: ${B}", &[("B", "true")], V(json!(true))),
        case("typed False", "v: ${B}", &[("B", "False")], V(json!(false))),
        case("yaml 1.1 yes stays string", "v: ${B}", &[("B", "yes")], V(json!("yes"))),
        case("typed null", "v: ${B}", &[("B", "null")], V(json!(null))),
        case("typed tilde", "v: ${B}", &[("B", "~")], V(json!(null))),
        case("huge int stays string", "v: ${N}", &[("N", "123456789012345678901234567890")], V(json!("123456789012345678901234567890"))),
        case("double quoted stays string", "v: \"${N}\"", &[("N", "3")], V(json!("3"))),
        case("single quoted stays string", "v: '${N}'", &[("N", "true")], V(json!("true"))),
        case("mixed stays string", "v: ${N}0", &[("N", "8")], V(json!("80"))),
        case("two placeholders stay string", "v: ${A}${B}", &[("A", "1"), ("B", "0")], V(json!("10"))),
        case("literal block stays string", "v: |\n  ${N}\n", &[("N", "3")], V(json!("3\n"))),
        case("!!str tag forces string", "v: !!str ${N}", &[("N", "3")], V(json!("3"))),
        case("!!int tag types quoted", "v: !!int \"${N}\"", &[("N", "3")], V(json!(3))),
        case("plain literal int", "v: 42", &[], V(json!(42))),
        // Injection attempts: the value stays one string, the structure does not move.
        case("newline and key", "v: ${A}", &[("A", "x\nw: injected")], V(json!("x\nw: injected"))),
        case("colon space", "v: ${A}", &[("A", "a: b")], V(json!("a: b"))),
        case("quotes", "v: ${A}", &[("A", "\"q\" 'r'")], V(json!("\"q\" 'r'"))),
        case("document separator", "v: ${A}", &[("A", "x\n---\napiVersion: v1\nkind: Secret")], Objects(1)),
        case("flow mapping", "v: ${A}", &[("A", "{a: b}")], V(json!("{a: b}"))),
        case("flow sequence", "v: ${A}", &[("A", "[1, 2]")], V(json!("[1, 2]"))),
        case("hash", "v: ${A}", &[("A", "x # y")], V(json!("x # y"))),
        case("alias-looking value", "v: ${A}", &[("A", "*anchor")], V(json!("*anchor"))),
        case("injected key absent", "v: ${A}", &[("A", "x\nw: injected")], At("/w", Value::Null)),
        // Keys.
        case("key substituted", "${K}: v", &[("K", "name")], At("/name", json!("v"))),
        case("key never typed", "${K}: v", &[("K", "3")], At("/3", json!("v"))),
        case("key with default", "${K:-key}: ${V:-2}", &[], At("/key", json!(2))),
        case("duplicate keys after substitution", "${A}: 1\n${B}: 2", &[("A", "x"), ("B", "x")], Err("invalid", 1, 6)),
        // Comments are never substituted.
        strict("placeholder in trailing comment", "v: 1 # ${NOPE}", &[], V(json!(1))),
        strict("placeholder in comment line", "# ${NOPE} and ${1bad\nv: 1", &[], V(json!(1))),
        // Flow collections and JSON.
        case("flow mapping placeholder", "m: {a: ${A}, b: c}", &[("A", "7")], At("/m/a", json!(7))),
        case("flow sequence placeholders", "l: [${A}, \"${A}\", x${A}]", &[("A", "7")], At("/l", json!([7, "7", "x7"]))),
        case("json input", "RAW\n{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"${N:-t}\"}, \"v\": ${R:-2}, \"s\": \"${R:-2}\"}", &[], At("", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}, "v": 2, "s": "2"}))),
        // Strict errors with positions (file line = body line + 4).
        strict("strict missing", "v: ${MISSING}", &[], Err("missing", 1, 5)),
        strict("strict missing embedded, later line", "a: 1\nb:\n  c: x-${SERVICE_TAG}-y", &[], Err("missing", 1, 7)),
        strict("strict missing in key", "${KEY}: v", &[], Err("missing", 1, 5)),
        strict("strict missing in literal block line", "v: |\n  one\n  two ${X}\n", &[], Err("missing", 1, 7)),
        strict("strict missing in second document", "RAW\napiVersion: v1\nkind: A\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: B\nmetadata:\n  name: ${NAME}\n", &[], Err("missing", 2, 9)),
        // Invalid and unterminated placeholders.
        case("invalid name digit", "v: ${1A}", &[], Err("invalid-placeholder", 1, 5)),
        case("invalid name space", "v: \"${A B}\"", &[], Err("invalid-placeholder", 1, 5)),
        case("bash-only operator", "v: ${A-x}", &[], Err("invalid-placeholder", 1, 5)),
        case("empty name", "v: x${}", &[], Err("invalid-placeholder", 1, 5)),
        case("nested default refused", "v: ${A:-${B}}", &[], Err("invalid-placeholder", 1, 5)),
        case("unterminated", "a: 1\nv: \"${A\"", &[], Err("unterminated", 1, 6)),
        case("unterminated in block", "v: |\n  x\n  ${A\n", &[], Err("unterminated", 1, 7)),
        // Documents.
        case("explicit start and end markers", "RAW\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n...\n", &[], Objects(1)),
        case("two documents and trailing separator", "RAW\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n---\n", &[], Objects(2)),
        case("empty documents skipped", "RAW\n---\n# only a comment\n---\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n...\n", &[], Objects(1)),
        case("empty file", "RAW\n", &[], Objects(0)),
        case("not a mapping", "RAW\n- a\n- b\n", &[], Err("invalid", 1, 1)),
        case("missing kind", "RAW\napiVersion: v1\nmetadata: {name: a}\n", &[], Err("invalid", 1, 1)),
        case("name from empty variable", "RAW\napiVersion: v1\nkind: A\nmetadata:\n  name: ${N}\n", &[], Err("invalid", 1, 1)),
        case("yaml syntax error", "v: [1, 2\nw: 3", &[], Err("syntax", 1, 6)),
        case("list flattened", "RAW\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: A, metadata: {name: a}}\n- {apiVersion: v1, kind: B, metadata: {name: b}}\n", &[], Objects(2)),
        case("list item checked at its line", "RAW\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: A, metadata: {name: a}}\n- {apiVersion: v1, kind: B}\n", &[], Err("invalid", 1, 5)),
        strict("crlf line endings", "RAW\napiVersion: v1\r\nkind: A\r\nmetadata: {name: a}\r\nv: ${X}\r\n", &[], Err("missing", 1, 4)),
        case("file containing the token character still renders", "# \u{E000}\nv: ${A}", &[("A", "1")], V(json!(1))),
        // Anchors, aliases, merge keys.
        case("alias copies substituted value", "a: &x ${A}\nv: *x", &[("A", "5")], V(json!(5))),
        case("merge key", "base: &b {x: 1, y: ${Y:-2}}\nm:\n  <<: *b\n  x: 9", &[], At("/m", json!({"x": 9, "y": 2}))),
        case("custom tag refused", "v: !secret x", &[], Err("invalid", 1, 5)),
    ]
}

fn file_for(body: &str) -> ManifestFile {
    let content = match body.strip_prefix("RAW\n") {
        Some(raw) => raw.to_owned(),
        None => format!("{HEADER}{body}\n"),
    };
    ManifestFile { path: "dir/case.yaml".to_owned(), content }
}

fn kind(err: &RenderError) -> &'static str {
    match err {
        RenderError::MissingVariable { .. } => "missing",
        RenderError::InvalidPlaceholder { .. } => "invalid-placeholder",
        RenderError::UnterminatedPlaceholder { .. } => "unterminated",
        RenderError::Syntax { .. } => "syntax",
        RenderError::Invalid { .. } => "invalid",
        _ => "other",
    }
}

#[test]
fn flux_compatible_table() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let vars: BTreeMap<String, String> =
            case.vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let result = render(&[file_for(case.body)], &vars, case.strict);
        let problem = match (&case.expect, result) {
            (V(want), Ok(r)) => check_at(&r.objects, "/v", want),
            (At(pointer, want), Ok(r)) => check_at(&r.objects, pointer, want),
            (Objects(n), Ok(r)) if r.objects.len() == *n => None,
            (Objects(n), Ok(r)) => Some(format!("{} objects, want {n}", r.objects.len())),
            (Err(want_kind, doc, line), Result::Err(e)) => {
                let mut wrong = Vec::new();
                if kind(&e) != *want_kind {
                    wrong.push(format!("kind {}", kind(&e)));
                }
                if e.file() != Some("dir/case.yaml") || e.document() != Some(*doc) || e.line() != Some(*line) {
                    wrong.push(format!("at {:?}", e.location()));
                }
                if *want_kind == "missing" && e.variable().is_none_or(|v| !e.to_string().contains(&format!("\"{v}\"")))
                {
                    wrong.push("variable not named".to_owned());
                }
                (!wrong.is_empty()).then(|| format!("{}: {e}", wrong.join(", ")))
            }
            (Err(..), Ok(r)) => Some(format!("rendered {:?}", r.objects.first().map(|o| &o.value))),
            (_, Result::Err(e)) => Some(format!("error: {e}")),
        };
        if let Some(problem) = problem {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

fn check_at(objects: &[tugboat::render::RenderedObject], pointer: &str, want: &Value) -> Option<String> {
    let Some(object) = objects.first() else {
        return Some("no object".to_owned());
    };
    let got = object.value.pointer(pointer).unwrap_or(&Value::Null);
    (got != want).then(|| format!("{pointer} = {got}, want {want}"))
}

#[test]
fn error_message_format() {
    let file = ManifestFile {
        path: "deploy/app.yaml".to_owned(),
        content: format!("{HEADER}---\n{HEADER}spec:\n  image: repo:${{SERVICE_TAG}}\n"),
    };
    let err = render(&[file], &BTreeMap::new(), true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "deploy/app.yaml: document 2, line 11: variable \"SERVICE_TAG\" has no value and no default (strict mode)"
    );
    assert_eq!(err.variable(), Some("SERVICE_TAG"));
}

#[test]
fn injection_keeps_key_count() {
    let body = "a: ${A}\nb: \"${A}\"\nc: '${A}'\nd: [${A}, {e: ${A}}]\n";
    let vars = BTreeMap::from([("A".to_owned(), "x\n---\nz: 1\n# c\n{f: g}: h".to_owned())]);
    let rendered = render(&[file_for(body)], &vars, true).unwrap();
    assert_eq!(rendered.objects.len(), 1);
    let object = rendered.objects[0].value.as_object().unwrap();
    assert_eq!(object.len(), 7, "{object:?}");
    assert_eq!(rendered.objects[0].value.pointer("/d/1/e"), Some(&json!(vars["A"])));
}
