//! TypeScript in snippets: types are stripped by `swc_ts_fast_strip` (the crate behind
//! Node's own type stripping) before the engine sees the code.
//!
//! Strip-only mode blanks the types out with spaces, so every line and column of what is
//! left is where the model wrote it, and the engine's error positions need no mapping.
//! Syntax that needs a rewrite (`enum`, `namespace`, parameter properties) falls back to
//! swc's transform mode (positions may then move). Code that swc cannot parse goes to the
//! engine as written (it may be JavaScript that is not TypeScript), with swc's first error
//! beside it: if the engine cannot parse it either, swc's error is the one reported, since
//! the engine stops at the first type annotation, which is not where the mistake is.

use std::sync::{Arc, Mutex};

use swc_common::errors::{DiagnosticBuilder, Emitter, Handler, Level};
use swc_common::sync::Lrc;
use swc_common::{SourceMap, Span};
use swc_ts_fast_strip::{operate, Mode, Options};

use super::{SNIPPET_HEAD, SNIPPET_TAIL};

/// Snippets are stripped on a thread of their own with this much stack (reserved, not used
/// unless needed), never on the caller's: swc's parser recurses a few KiB of stack per level
/// of nesting (unoptimised), so 250 nested brackets overflow an async worker's 2 MiB, and a
/// parse that takes milliseconds must not hold up a worker that serves other tenants.
const STRIP_STACK_BYTES: usize = 512 << 20;
/// Longer than this, a snippet goes to the engine as written (JavaScript only): its parser
/// runs inside the sandbox, where running out of stack is the snippet's error.
const MAX_STRIP_BYTES: usize = 64 << 10;
/// Deeper than this, the same: no TypeScript a model writes nests this deep.
const MAX_STRIP_NESTING: usize = 256;

/// A snippet ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Stripped {
    /// The code: types removed, or as written.
    pub code: String,
    /// Where swc could not parse the snippet (line and column in the snippet as written,
    /// 1-based) and why; `None` when it could.
    pub syntax_error: Option<(usize, usize, String)>,
}

impl Stripped {
    fn as_written(body: &str) -> Self {
        Self {
            code: body.to_owned(),
            syntax_error: None,
        }
    }
}

/// The snippet (an async function body) with its TypeScript types removed, or as written
/// when it cannot be parsed as TypeScript (or is too long or too deep to strip safely). The
/// work is done on a thread of its own; the caller only waits.
pub async fn strip_types(body: &str) -> Stripped {
    if body.len() > MAX_STRIP_BYTES || nesting(body) > MAX_STRIP_NESTING {
        return Stripped::as_written(body);
    }
    let owned = body.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("strip-types".into())
        .stack_size(STRIP_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(strip_here(&owned));
        });
    match spawned {
        Ok(_) => rx.await.unwrap_or_else(|_| Stripped::as_written(body)),
        Err(_) => Stripped::as_written(body),
    }
}

/// How deep `(`, `[` and `{` nest in `code` (strings and comments not told apart: an
/// upper bound is all that is needed).
fn nesting(code: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for b in code.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn strip_here(body: &str) -> Stripped {
    // A body has top-level `return` and `await`: parse it inside the same function head the
    // engine wraps it in, then take the head and tail off again.
    let wrapped = format!("{SNIPPET_HEAD}{body}{SNIPPET_TAIL}");
    let mut syntax_error = None;
    for mode in [Mode::StripOnly, Mode::Transform] {
        let code = match transform(&wrapped, mode) {
            Ok(code) => code,
            Err(e) => {
                syntax_error = syntax_error.or(e);
                continue;
            }
        };
        let stripped = |code: String| Stripped {
            code,
            syntax_error: None,
        };
        let code = code.trim_end();
        if let Some(inner) = code.strip_prefix(SNIPPET_HEAD) {
            if let Some(inner) = inner.strip_suffix(SNIPPET_TAIL.trim_end()) {
                return stripped(inner.trim_end_matches([' ', '\t']).to_owned());
            }
        }
        // Transform mode re-prints the code (`(async ()=>{`): unwrap its function.
        if let Some(open) = code.find('{') {
            if let Some(close) = code.rfind('}') {
                if open < close {
                    return stripped(code[open + 1..close].to_owned());
                }
            }
        }
    }
    Stripped {
        code: body.to_owned(),
        // Reported in the wrapper's tail (an unclosed bracket): the snippet's end.
        syntax_error: syntax_error.map(|(line, column, message)| {
            let lines: Vec<&str> = body.lines().collect();
            if line <= lines.len().max(1) {
                return (line, column, message);
            }
            let last = lines.last().map_or(0, |l| l.chars().count());
            (lines.len().max(1), last + 1, message)
        }),
    }
}

/// An error swc reported: where, if it said, and what.
type Reported = (Option<Span>, String);

/// The first error swc reports.
#[derive(Default, Clone)]
struct FirstError(Arc<Mutex<Option<Reported>>>);

impl Emitter for FirstError {
    fn emit(&mut self, db: &mut DiagnosticBuilder<'_>) {
        if !matches!(db.level, Level::Error | Level::Fatal | Level::PhaseFatal) {
            return;
        }
        let mut first = crate::locks::lock(&self.0);
        if first.is_none() {
            *first = Some((db.span.primary_span(), db.message()));
        }
    }
}

/// `code` transformed in `mode`, or where and why swc could not parse it (line and column
/// in the snippet, not the wrapped code), if it said.
fn transform(code: &str, mode: Mode) -> Result<String, Option<(usize, usize, String)>> {
    let cm: Lrc<SourceMap> = Default::default();
    let first = FirstError::default();
    let handler = Handler::with_emitter(true, false, Box::new(first.clone()));
    let options = Options {
        module: Some(false),
        mode,
        ..Options::default()
    };
    swc_common::GLOBALS.set(&Default::default(), || {
        match operate(&cm, &handler, code.to_owned(), options) {
            Ok(out) => Ok(out.code),
            Err(_) => {
                let reported = crate::locks::lock(&first.0).take();
                Err(reported.and_then(|(span, message)| {
                    let at = cm.lookup_char_pos(span?.lo);
                    // The head shares the snippet's first line.
                    let column = at.col.0 + 1;
                    let column = if at.line == 1 {
                        column.saturating_sub(SNIPPET_HEAD.chars().count())
                    } else {
                        column
                    };
                    Some((at.line, column.max(1), message))
                }))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn types_are_blanked_and_positions_kept() {
        let ts = "const x: number = 1;\ninterface A { b: string }\nreturn x as number;";
        let js = strip_types(ts).await.code;
        assert!(!js.contains("number") && !js.contains("interface"), "{js}");
        let lines: Vec<&str> = js.lines().collect();
        assert_eq!(lines.len(), 3, "{js}");
        assert_eq!(lines[0].find("= 1"), ts.lines().next().unwrap().find("= 1"));
        assert!(lines[2].starts_with("return x"));
    }

    #[tokio::test]
    async fn plain_javascript_is_unchanged_and_broken_code_passes_through() {
        let js = "const r = await tools.s.t({a: 1});\nreturn r;";
        assert_eq!(strip_types(js).await.code, js);
        // Nesting that would overflow an async worker's stack in swc's parser, short and
        // long: passed through, or stripped on a thread with room.
        for n in [250, 255, 30_000] {
            let deep = format!("return {}1{};", "(".repeat(n), ")".repeat(n));
            assert!(strip_types(&deep).await.code.contains("(((1)))"), "{n}");
        }
        let broken = "const a: number = 1;\nreturn (;";
        let stripped = strip_types(broken).await;
        assert_eq!(stripped.code, broken);
        let (line, column, _) = stripped.syntax_error.clone().expect("swc says where");
        assert_eq!((line, column), (2, 9), "{stripped:?}");
        // An unclosed bracket is found in the wrapper's tail: reported at the snippet's end.
        let open = strip_types("const a: number = 1;\nreturn f(a").await;
        let (line, column, _) = open.syntax_error.clone().expect("swc says where");
        assert_eq!((line, column), (2, 11), "{open:?}");
    }

    #[tokio::test]
    async fn enums_need_a_transform_and_get_one() {
        let js = strip_types("enum Color { Red, Green }\nreturn Color.Green;")
            .await
            .code;
        assert!(!js.contains("enum "), "{js}");
        assert!(js.contains("return"), "{js}");
    }
}
