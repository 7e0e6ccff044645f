//! W3C Trace Context (`traceparent`, `tracestate`) carried in a request's `_meta`.
//!
//! Why here: the client layer is where our requests to a server are built, so it is where a
//! caller's trace is carried on. `serve` takes the context from its client's `_meta`, and
//! every upstream call and plugin run made for that request passes it on as a child: the
//! same trace id, a new parent id (ours), so a tracing backend shows the registry as one hop.

use serde_json::{Map, Value};

/// A validated W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    parent_id: String,
    flags: String,
    state: Option<String>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TraceContext {
    /// Parses a `traceparent` header value (version `00`, or a later version read as `00`
    /// as the spec says); `None` when it is malformed or all-zero.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = is_hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && is_hex(trace_id, 32)
            && trace_id.bytes().any(|b| b != b'0')
            && is_hex(parent_id, 16)
            && parent_id.bytes().any(|b| b != b'0')
            && is_hex(flags, 2);
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: flags.to_owned(),
            state: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .map(str::to_owned),
        })
    }

    /// The context in a request's `_meta` (`traceparent`, `tracestate`), if there is a valid
    /// one.
    pub fn from_meta(meta: &Map<String, Value>) -> Option<Self> {
        let parent = meta.get("traceparent")?.as_str()?;
        Self::parse(parent, meta.get("tracestate").and_then(Value::as_str))
    }

    /// The trace id (32 lowercase hex digits), as log lines carry it.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The `traceparent` value.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }

    /// The context of a request we make on its behalf: same trace, a new parent id.
    pub fn child(&self) -> Self {
        let mut id = [0u8; 8];
        // Without an OS source of randomness (never on Linux), still a valid, non-zero id.
        let _ = getrandom::getrandom(&mut id);
        id[7] |= 1;
        Self {
            parent_id: id.iter().map(|b| format!("{b:02x}")).collect(),
            ..self.clone()
        }
    }

    /// The context of a request made now, on behalf of the current span: with the `otlp`
    /// feature exporting, the parent id is that span's own (so a tracing backend links the
    /// hops); otherwise a new one ([`TraceContext::child`]).
    pub fn outgoing(&self) -> Self {
        #[cfg(feature = "otlp")]
        if let Some(parent_id) = otel::current_span_id() {
            return Self {
                parent_id,
                ..self.clone()
            };
        }
        self.child()
    }

    /// Makes `span` (the one serving the request this context came with) a child of the
    /// caller's span in exported traces (`otlp` feature; without it, nothing to do).
    pub fn adopt(&self, span: &tracing::Span) {
        #[cfg(feature = "otlp")]
        otel::set_parent(span, self);
        #[cfg(not(feature = "otlp"))]
        let _ = span;
    }

    /// Writes the context into a request's `_meta`.
    pub fn write_to(&self, meta: &mut Map<String, Value>) {
        meta.insert("traceparent".into(), Value::String(self.traceparent()));
        if let Some(state) = &self.state {
            meta.insert("tracestate".into(), Value::String(state.clone()));
        }
    }
}

/// The bridge to OpenTelemetry spans (`tracing-opentelemetry`), with the `otlp` feature.
#[cfg(feature = "otlp")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    /// The id of the current span as exported, if it is.
    pub(super) fn current_span_id() -> Option<String> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let span_context = span.span_context();
        span_context
            .is_valid()
            .then(|| span_context.span_id().to_string())
    }

    /// Parents `span` on the remote span `trace` names.
    pub(super) fn set_parent(span: &tracing::Span, trace: &TraceContext) {
        let (Ok(trace_id), Ok(span_id)) = (
            TraceId::from_hex(&trace.trace_id),
            SpanId::from_hex(&trace.parent_id),
        ) else {
            return;
        };
        let flags = u8::from_str_radix(&trace.flags, 16).unwrap_or(0);
        let state = trace
            .state
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

#[cfg(test)]
mod tests {
    use super::TraceContext;

    #[test]
    fn parses_valid_and_rejects_malformed() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tc = TraceContext::parse(ok, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(tc.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.traceparent(), ok);
        let child = tc.child();
        assert_eq!(child.trace_id(), tc.trace_id());
        assert_ne!(child.traceparent(), ok);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad:?}");
        }
    }
}
