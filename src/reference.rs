//! The field reference (`docs/reference.md`), generated from the CRD schemas so it cannot
//! drift from what the API server validates.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// One documented field: its path (`spec.source.repoURL`, `[]` for list items, `.*` for map
/// values) and the schema that describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub path: String,
    pub kind: String,
    pub required: bool,
    pub description: String,
    pub constraints: Vec<String>,
}

/// Every field under `spec` and `status` of a CRD's first version, depth first in schema order.
pub fn fields(crd: &CustomResourceDefinition) -> Vec<Field> {
    let mut out = Vec::new();
    let Some(root) = crd.spec.versions.first().and_then(|v| v.schema.as_ref()?.open_api_v3_schema.as_ref()) else {
        return out;
    };
    for (name, schema) in root.properties.iter().flatten().filter(|(name, _)| *name == "spec" || *name == "status") {
        let required = root.required.iter().flatten().any(|r| r == name);
        walk(name, schema, required, &mut out);
    }
    out
}

fn walk(path: &str, schema: &JSONSchemaProps, required: bool, out: &mut Vec<Field>) {
    out.push(Field {
        path: path.to_owned(),
        kind: type_name(schema),
        required,
        description: schema.description.clone().unwrap_or_default(),
        constraints: constraints(schema),
    });
    walk_properties(path, schema, out);
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
        walk_properties(&format!("{path}[]"), items, out);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
        walk_properties(&format!("{path}.*"), values, out);
    }
}

/// The named properties of `schema`, as fields under `prefix`.
fn walk_properties(prefix: &str, schema: &JSONSchemaProps, out: &mut Vec<Field>) {
    for (name, child) in schema.properties.iter().flatten() {
        let required = schema.required.iter().flatten().any(|r| r == name);
        walk(&format!("{prefix}.{name}"), child, required, out);
    }
}

fn type_name(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "integer or string".into();
    }
    let base = schema.type_.clone().unwrap_or_else(|| "any".into());
    match base.as_str() {
        "array" => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => format!("list of {}", type_name(items)),
            _ => "list".into(),
        },
        "object" => match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => format!("map of {}", type_name(values)),
            _ if schema.x_kubernetes_preserve_unknown_fields == Some(true) => "any object".into(),
            _ => "object".into(),
        },
        "string" => match schema.format.as_deref() {
            Some(format) => format!("string ({format})"),
            None => "string".into(),
        },
        _ => base,
    }
}

fn constraints(schema: &JSONSchemaProps) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(values) = &schema.enum_ {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", v.0.as_str().unwrap_or_default())).collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    if let Some(default) = &schema.default {
        out.push(format!("default `{}`", default.0));
    }
    if let Some(pattern) = &schema.pattern {
        out.push(format!("pattern `{pattern}`"));
    }
    let range = |name: &str, min: Option<String>, max: Option<String>| match (min, max) {
        (Some(min), Some(max)) => Some(format!("{name} {min}–{max}")),
        (Some(min), None) => Some(format!("{name} ≥ {min}")),
        (None, Some(max)) => Some(format!("{name} ≤ {max}")),
        (None, None) => None,
    };
    out.extend(range("length", schema.min_length.map(|v| v.to_string()), schema.max_length.map(|v| v.to_string())));
    out.extend(range("items", schema.min_items.map(|v| v.to_string()), schema.max_items.map(|v| v.to_string())));
    out.extend(range("value", schema.minimum.map(|v| v.to_string()), schema.maximum.map(|v| v.to_string())));
    if let Some(max) = schema.max_properties {
        out.push(format!("at most {max} entries"));
    }
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        out.push(format!("checked: {}", rule.message.clone().unwrap_or_else(|| format!("`{}`", rule.rule))));
    }
    out
}

/// Markdown cells hold one line: newlines become spaces, pipes are escaped.
fn cell(text: &str) -> String {
    let joined = text.split("\n\n").map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    joined.join("<br>").replace('|', "\\|")
}

/// The whole reference document for `crds`.
pub fn markdown(crds: &[(&str, CustomResourceDefinition)]) -> String {
    let mut doc = String::from(
        "# Resource reference\n\n\
         Generated from the CRD schemas by `make docs` (a test fails when this file is out of date).\n\
         Every field the API server accepts is listed; `[]` marks list items, `.*` map values.\n\
         Constraints marked *checked* are validated by the API server when the object is applied.\n",
    );
    for (_, crd) in crds {
        let names = &crd.spec.names;
        let version = crd.spec.versions.first();
        let _ = write!(
            doc,
            "\n## {kind}\n\n`{group}/{version}`, namespaced, short name{plural_s} {short}.\n\n",
            kind = names.kind,
            group = crd.spec.group,
            version = version.map(|v| v.name.as_str()).unwrap_or_default(),
            plural_s = if names.short_names.as_ref().is_some_and(|s| s.len() > 1) { "s" } else { "" },
            short = names.short_names.iter().flatten().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
        );
        let root = version.and_then(|v| v.schema.as_ref()?.open_api_v3_schema.as_ref());
        if let Some(description) = root.and_then(|r| r.description.as_deref()) {
            let _ = writeln!(doc, "{description}\n");
        }
        let columns = version.and_then(|v| v.additional_printer_columns.as_ref());
        if let Some(columns) = columns {
            let list: Vec<String> = columns.iter().map(|c| format!("{} (`{}`)", c.name, c.json_path)).collect();
            let _ = writeln!(doc, "`kubectl get {}` shows: {}.\n", names.plural, list.join(", "));
        }
        doc.push_str("| Field | Type | Description |\n|---|---|---|\n");
        for field in fields(crd) {
            let mut description = cell(&field.description);
            if field.required {
                description = format!("**Required.** {description}");
            }
            if !field.constraints.is_empty() {
                description.push_str(&format!("<br>*{}*", cell(&field.constraints.join("; "))));
            }
            let _ = writeln!(doc, "| `{}` | {} | {} |", field.path, field.kind, description);
        }
    }
    doc
}
