//! Remote server entries: `{"type": "http" | "sse", "url": ..., "headers": {...}}`, the shape
//! Claude Code, VS Code and Cursor write. Cursor leaves `type` out; there a `url` whose path
//! ends in `/sse` means the older HTTP+SSE transport and any other URL streamable HTTP, which
//! is how Cursor itself tells them apart.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::json::{Fields, JsonFileError};
use super::{OAuthSettings, RemoteTransport, ServerConfig};

/// The remote transport an entry names, or `None` for a stdio server.
pub(super) fn transport(
    v: &Fields<'_>,
    obj: &Map<String, Value>,
) -> Result<Option<RemoteTransport>, JsonFileError> {
    let Some(t) = obj.get("type") else {
        if obj.contains_key("command") || !obj.contains_key("url") {
            return Ok(None);
        }
        let url = v.string("url", &obj["url"])?;
        let path = url.split(['?', '#']).next().unwrap_or_default();
        return Ok(Some(if path.trim_end_matches('/').ends_with("/sse") {
            RemoteTransport::Sse
        } else {
            RemoteTransport::StreamableHttp
        }));
    };
    Ok(match v.string("type", t)?.as_str() {
        "stdio" => None,
        "http" | "streamable-http" | "streamableHttp" => Some(RemoteTransport::StreamableHttp),
        "sse" => Some(RemoteTransport::Sse),
        other => {
            let expected = "expected \"stdio\", \"http\" (streamable HTTP) or \"sse\"";
            return Err(v.err("type", format!("unknown transport \"{other}\"; {expected}")));
        }
    })
}

/// The fields of a remote server: `url` and `headers`.
pub(super) fn parse(
    v: &Fields<'_>,
    obj: &Map<String, Value>,
    transport: RemoteTransport,
) -> Result<ServerConfig, JsonFileError> {
    let stdio_only = ["command", "args", "env", "inherit_env", "cwd"];
    if let Some(field) = stdio_only.into_iter().find(|f| obj.contains_key(*f)) {
        let message = format!(
            "a remote server (\"type\": \"{}\") is not started: \"{field}\" is only for a stdio server",
            transport.as_str()
        );
        return Err(v.err(field, message));
    }
    let url = match obj.get("url") {
        None => {
            return Err(v.err(
                "url",
                "missing; a remote server needs the URL of its endpoint",
            ))
        }
        Some(u) => v.string("url", u)?,
    };
    // `${VAR}` may stand for the whole URL; it is checked again once expanded.
    if !url.starts_with('$') {
        check_url(&url).map_err(|m| v.err("url", m))?;
    }
    let mut headers = BTreeMap::new();
    if let Some(h) = obj.get("headers") {
        headers = v.string_map("headers", h)?;
        if let Some(name) = headers.keys().find(|k| !is_header_name(k)) {
            return Err(v.err(format!("headers.{name}"), "not a valid HTTP header name"));
        }
    }
    let oauth = obj.get("auth").map(|a| oauth(v, a)).transpose()?;
    if oauth.is_some() && transport == RemoteTransport::Sse {
        return Err(v.err(
            "auth",
            "OAuth sign-in is for streamable HTTP servers (\"type\": \"http\"), not the older HTTP+SSE",
        ));
    }
    let mut config = ServerConfig::remote(transport, url);
    if let Some(remote) = config.remote.as_mut() {
        remote.headers = headers;
        remote.oauth = oauth;
    }
    Ok(config)
}

/// `"auth"`: `"oauth"`, or `{"type": "oauth", "client_id": ..., "scopes": [...]}`.
fn oauth(v: &Fields<'_>, auth: &Value) -> Result<OAuthSettings, JsonFileError> {
    let expected = "expected \"oauth\" or {\"type\": \"oauth\", \"client_id\", \"scopes\"}";
    let mut settings = OAuthSettings::default();
    let kind = match auth {
        Value::String(s) => s.clone(),
        Value::Object(fields) => {
            v.only("auth", fields, &["type", "client_id", "scopes"])?;
            if let Some(id) = fields.get("client_id") {
                settings.client_id = Some(v.string("auth.client_id", id)?);
            }
            if let Some(scopes) = fields.get("scopes") {
                settings.scopes = v.strings("auth.scopes", scopes)?;
            }
            match fields.get("type") {
                Some(t) => v.string("auth.type", t)?,
                None => return Err(v.err("auth.type", format!("missing; {expected}"))),
            }
        }
        _ => return Err(v.err("auth", expected)),
    };
    if kind != "oauth" {
        return Err(v.err("auth", format!("unknown \"{kind}\"; {expected}")));
    }
    Ok(settings)
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("\"{url}\" is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("\"{url}\" has no host"));
    }
    Ok(())
}

/// A header name as HTTP allows it (a token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::super::Registry;
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Registry, String> {
        Registry::parse(text, Path::new("/etc/reg.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_shapes_clients_write() {
        let r = parse(
            r#"{"mcpServers": {
                "a": {"type": "http", "url": "https://x.example/mcp", "headers": {"Authorization": "Bearer ${T}"}},
                "b": {"type": "sse", "url": "http://127.0.0.1:9/sse"},
                "c": {"url": "http://127.0.0.1:9/sse"},
                "d": {"url": "http://127.0.0.1:9/mcp"}
            }}"#,
        )
        .unwrap();
        let remote = |n: &str| r.server(n).unwrap().remote.clone().unwrap();
        assert_eq!(remote("a").transport, RemoteTransport::StreamableHttp);
        assert_eq!(remote("a").headers["Authorization"], "Bearer ${T}");
        assert_eq!(remote("b").transport, RemoteTransport::Sse);
        assert_eq!(remote("c").transport, RemoteTransport::Sse);
        assert_eq!(remote("d").transport, RemoteTransport::StreamableHttp);
        assert_eq!(remote("a").oauth, None);
        let r = parse(
            r#"{"mcpServers": {
                "e": {"url": "https://x.example/mcp", "auth": "oauth"},
                "f": {"url": "https://x.example/mcp", "auth": {"type": "oauth", "client_id": "c1", "scopes": ["read"]}}
            }}"#,
        )
        .unwrap();
        let oauth = |n: &str| r.server(n).unwrap().remote.clone().unwrap().oauth.unwrap();
        assert_eq!(oauth("e"), OAuthSettings::default());
        assert_eq!(oauth("f").client_id.as_deref(), Some("c1"));
        assert_eq!(oauth("f").scopes, ["read"]);
    }

    #[test]
    fn mistakes_name_the_server_and_field() {
        let cases: [(&str, &[&str]); 10] = [
            (
                r#"{"type": "http"}"#,
                &["server \"a\": field \"url\": missing"],
            ),
            (
                r#"{"type": "http", "url": "ftp://x"}"#,
                &["field \"url\"", "not an http"],
            ),
            (
                r#"{"type": "sse", "url": "http://x", "command": "y"}"#,
                &["field \"command\"", "only for a stdio"],
            ),
            (
                r#"{"command": "y", "url": "http://x"}"#,
                &["field \"url\"", "only for a remote"],
            ),
            (
                r#"{"type": "ws", "url": "http://x"}"#,
                &["field \"type\"", "\"ws\""],
            ),
            (
                r#"{"url": "http://x", "headers": {"a b": "1"}}"#,
                &["field \"headers.a b\""],
            ),
            (
                r#"{"url": "http://x", "auth": "basic"}"#,
                &["field \"auth\"", "unknown \"basic\"", "\"oauth\""],
            ),
            (
                r#"{"url": "http://x", "auth": {"type": "oauth", "scope": "a"}}"#,
                &["field \"auth", "scope"],
            ),
            (
                r#"{"type": "sse", "url": "http://x/sse", "auth": "oauth"}"#,
                &["field \"auth\"", "streamable HTTP"],
            ),
            (
                r#"{"command": "y", "auth": "oauth"}"#,
                &["field \"auth\"", "only for a remote"],
            ),
        ];
        for (entry, parts) in cases {
            let err = parse(&format!(r#"{{"mcpServers": {{"a": {entry}}}}}"#)).unwrap_err();
            for part in parts {
                assert!(err.contains(part), "{entry}: {part} missing from {err}");
            }
        }
    }
}
