//! TypeScript in snippets: types are stripped by `swc_ts_fast_strip` (the crate behind
//! Node's own type stripping) before the engine sees the code.
//!
//! Strip-only mode blanks the types out with spaces, so every line and column of what is
//! left is where the model wrote it, and the engine's error positions need no mapping.
//! Syntax that needs a rewrite (`enum`, `namespace`, parameter properties) falls back to
//! swc's transform mode (positions may then move). Code that swc cannot parse goes to the
//! engine as written: if it is not JavaScript either, the engine's syntax error names the
//! line and column.

use swc_common::errors::Handler;
use swc_common::sync::Lrc;
use swc_common::SourceMap;
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

/// The snippet (an async function body) with its TypeScript types removed, or as written
/// when it cannot be parsed as TypeScript (or is too long or too deep to strip safely). The
/// work is done on a thread of its own; the caller only waits.
pub async fn strip_types(body: &str) -> String {
    if body.len() > MAX_STRIP_BYTES || nesting(body) > MAX_STRIP_NESTING {
        return body.to_owned();
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
        Ok(_) => rx.await.unwrap_or_else(|_| body.to_owned()),
        Err(_) => body.to_owned(),
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

fn strip_here(body: &str) -> String {
    // A body has top-level `return` and `await`: parse it inside the same function head the
    // engine wraps it in, then take the head and tail off again.
    let wrapped = format!("{SNIPPET_HEAD}{body}{SNIPPET_TAIL}");
    for mode in [Mode::StripOnly, Mode::Transform] {
        if let Some(code) = transform(&wrapped, mode) {
            let code = code.trim_end();
            if let Some(inner) = code.strip_prefix(SNIPPET_HEAD) {
                if let Some(inner) = inner.strip_suffix(SNIPPET_TAIL.trim_end()) {
                    return inner.trim_end_matches([' ', '\t']).to_owned();
                }
            }
            // Transform mode re-prints the code (`(async ()=>{`): unwrap its function.
            if let Some(open) = code.find('{') {
                if let Some(close) = code.rfind('}') {
                    if open < close {
                        return code[open + 1..close].to_owned();
                    }
                }
            }
        }
    }
    body.to_owned()
}

fn transform(code: &str, mode: Mode) -> Option<String> {
    let cm: Lrc<SourceMap> = Default::default();
    let handler = Handler::with_emitter_writer(Box::new(std::io::sink()), None);
    let options = Options {
        module: Some(false),
        mode,
        ..Options::default()
    };
    swc_common::GLOBALS.set(&Default::default(), || {
        operate(&cm, &handler, code.to_owned(), options)
            .ok()
            .map(|out| out.code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn types_are_blanked_and_positions_kept() {
        let ts = "const x: number = 1;\ninterface A { b: string }\nreturn x as number;";
        let js = strip_types(ts).await;
        assert!(!js.contains("number") && !js.contains("interface"), "{js}");
        let lines: Vec<&str> = js.lines().collect();
        assert_eq!(lines.len(), 3, "{js}");
        assert_eq!(lines[0].find("= 1"), ts.lines().next().unwrap().find("= 1"));
        assert!(lines[2].starts_with("return x"));
    }

    #[tokio::test]
    async fn plain_javascript_is_unchanged_and_broken_code_passes_through() {
        let js = "const r = await tools.s.t({a: 1});\nreturn r;";
        assert_eq!(strip_types(js).await, js);
        // Nesting that would overflow an async worker's stack in swc's parser, short and
        // long: passed through, or stripped on a thread with room.
        for n in [250, 255, 30_000] {
            let deep = format!("return {}1{};", "(".repeat(n), ")".repeat(n));
            assert!(strip_types(&deep).await.contains("(((1)))"), "{n}");
        }
        let broken = "return (;";
        assert_eq!(strip_types(broken).await, broken);
    }

    #[tokio::test]
    async fn enums_need_a_transform_and_get_one() {
        let js = strip_types("enum Color { Red, Green }\nreturn Color.Green;").await;
        assert!(!js.contains("enum "), "{js}");
        assert!(js.contains("return"), "{js}");
    }
}
