//! The API reference page: plain HTML rendered on the server from the OpenAPI document, so it
//! needs no JavaScript, no CDN and no build-time download.

use std::fmt::Write;

use serde_json::Value;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if let Some(items) = schema.get("items") {
        return format!("[{}]", schema_name(items));
    }
    schema
        .get("type")
        .map(|t| match t {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "object".into())
}

/// Renders the reference page.
pub(crate) fn render(spec: &utoipa::openapi::OpenApi) -> String {
    let doc = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut out = String::new();
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API");
    let version = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let description = doc
        .pointer("/info/description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}}\
         .op{{border:1px solid #d0d7de;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}}\
         .m{{font-weight:700;font-family:monospace;padding:.1rem .4rem;border-radius:4px;background:#ddf4ff}}\
         code,pre{{font-family:monospace;background:#f6f8fa}} pre{{padding:.5rem;overflow:auto}}\
         table{{border-collapse:collapse}} td,th{{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left}}\
         </style></head><body><h1>{t} <small>{v}</small></h1><p>{d}</p>\
         <p>Machine-readable: <a href=\"/api/openapi.json\">/api/openapi.json</a></p>",
        t = esc(title),
        v = esc(version),
        d = esc(description)
    );
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        out.push_str("<h2>Operations</h2>");
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let summary = op.get("summary").and_then(Value::as_str).unwrap_or("");
                let details = op.get("description").and_then(Value::as_str).unwrap_or("");
                let scopes: Vec<String> = op
                    .get("security")
                    .and_then(Value::as_array)
                    .map(|reqs| {
                        reqs.iter()
                            .filter_map(Value::as_object)
                            .flat_map(|r| r.values())
                            .filter_map(Value::as_array)
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let access = if scopes.is_empty() {
                    "no authentication".to_owned()
                } else {
                    format!("permission <code>{}</code>", esc(&scopes.join(", ")))
                };
                let _ = write!(
                    out,
                    "<div class=\"op\" id=\"{id}\"><p><span class=\"m\">{m}</span> <code>{p}</code> — {s}</p><p>{d}</p><p>Requires {a}.</p>",
                    id = esc(&format!("{method}-{path}")),
                    m = esc(&method.to_uppercase()),
                    p = esc(path),
                    s = esc(summary),
                    d = esc(details),
                    a = access
                );
                if let Some(params) = op.get("parameters").and_then(Value::as_array) {
                    out.push_str(
                        "<table><tr><th>parameter</th><th>in</th><th>description</th></tr>",
                    );
                    for p in params {
                        let _ = write!(
                            out,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                            esc(p.get("name").and_then(Value::as_str).unwrap_or("")),
                            esc(p.get("in").and_then(Value::as_str).unwrap_or("")),
                            esc(p.get("description").and_then(Value::as_str).unwrap_or(""))
                        );
                    }
                    out.push_str("</table>");
                }
                if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                    let _ = write!(
                        out,
                        "<p>Body: <a href=\"#schema-{n}\"><code>{n}</code></a></p>",
                        n = esc(&schema_name(body))
                    );
                }
                if let Some(responses) = op.get("responses").and_then(Value::as_object) {
                    out.push_str("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>");
                    for (status, r) in responses {
                        let body = r
                            .get("content")
                            .and_then(Value::as_object)
                            .and_then(|c| c.values().next())
                            .and_then(|c| c.get("schema"))
                            .map(schema_name)
                            .unwrap_or_default();
                        let _ = write!(
                            out,
                            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                            esc(status),
                            esc(r.get("description").and_then(Value::as_str).unwrap_or("")),
                            esc(&body)
                        );
                    }
                    out.push_str("</table>");
                }
                out.push_str("</div>");
            }
        }
    }
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        out.push_str("<h2>Schemas</h2>");
        for (name, schema) in schemas {
            let pretty = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = write!(
                out,
                "<h3 id=\"schema-{n}\">{n}</h3><pre>{s}</pre>",
                n = esc(name),
                s = esc(&pretty)
            );
        }
    }
    out.push_str("</body></html>");
    out
}
