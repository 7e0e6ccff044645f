//! Resources and resource templates: which server serves which URI.
//!
//! URIs are not namespaced: they are already global names that clients hand back verbatim,
//! so a session remembers which server listed which URI (or template) and routes reads,
//! subscriptions and completions there.

use std::collections::{BTreeMap, HashSet};

/// A resource or resource template and the server that serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Served<T> {
    /// The server it belongs to.
    pub server: String,
    /// The resource or template as the server described it.
    pub item: T,
}

pub(super) fn served<T>(server: &str, items: Vec<T>) -> Vec<Served<T>> {
    items
        .into_iter()
        .map(|item| Served {
            server: server.to_owned(),
            item,
        })
        .collect()
}

/// Whether `uri` is an instance of the RFC 6570 `template`: every `{...}` expression matches
/// one or more characters, the rest literally. Enough to route a read to the server whose
/// template produced the URI.
///
/// Linear in the lengths of both: a client chooses the URI (a tenant may send megabytes of
/// `/`), so no split point is ever tried twice. The literal pieces are matched left to right,
/// each at its first place after the expression before it has taken one character; taking
/// the earliest place leaves the most room for the rest, so if any match exists this finds
/// one. The last piece must end the URI.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let pieces = literal_pieces(template);
    let [first, middle @ .., last] = pieces.as_slice() else {
        return template == uri;
    };
    let Some(tail) = uri.strip_prefix(first) else {
        return false;
    };
    let Some(mut rest) = tail.strip_suffix(last) else {
        return false;
    };
    for piece in middle {
        // The expression before this piece takes at least one character.
        let mut chars = rest.chars();
        if chars.next().is_none() {
            return false;
        }
        let after = chars.as_str();
        match after.find(piece) {
            Some(at) => rest = &after[at + piece.len()..],
            None => return false,
        }
    }
    // The last expression takes at least one character.
    !rest.is_empty()
}

/// The literal text around a template's expressions: one more piece than expressions. An
/// unclosed `{` is literal.
fn literal_pieces(template: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        pieces.push(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    pieces.push(rest);
    pieces
}

/// Which server listed which resource URIs and templates, for routing.
#[derive(Default)]
pub(super) struct ResourceOwners {
    /// By server name, so "the first by name" is the map's order.
    by_server: BTreeMap<String, Listed>,
}

/// What one server listed.
#[derive(Default)]
struct Listed {
    uris: HashSet<String>,
    templates: Vec<String>,
}

impl ResourceOwners {
    /// The server among `servers` that serves `uri`: the first by name that listed it, else
    /// the first whose template matches it. `None` when no listing of theirs names it.
    pub(super) fn find_among(&self, uri: &str, servers: &[impl AsRef<str>]) -> Option<String> {
        let allowed = |server: &String| servers.iter().any(|s| s.as_ref() == server);
        let candidates = || self.by_server.iter().filter(|(s, _)| allowed(s));
        candidates()
            .find(|(_, listed)| listed.uris.contains(uri))
            .or_else(|| {
                candidates().find(|(_, listed)| {
                    listed
                        .templates
                        .iter()
                        .any(|t| t == uri || template_matches(t, uri))
                })
            })
            .map(|(server, _)| server.clone())
    }

    /// Records `server`'s listing of `uris` (replacing its previous one).
    pub(super) fn listed_uris<'a>(&mut self, server: &str, uris: impl Iterator<Item = &'a str>) {
        let listed = self.by_server.entry(server.to_owned()).or_default();
        listed.uris = uris.map(str::to_owned).collect();
    }

    /// Records `server`'s listing of templates (replacing its previous one).
    pub(super) fn listed_templates<'a>(
        &mut self,
        server: &str,
        templates: impl Iterator<Item = &'a str>,
    ) {
        let listed = self.by_server.entry(server.to_owned()).or_default();
        listed.templates = templates.map(str::to_owned).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn uri_templates_route_their_instances() {
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/123/data"
        ));
        assert!(template_matches("file:///{path}", "file:///a/b.txt"));
        assert!(template_matches("db://{table}/{row}", "db://users/7"));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template//data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://other/1/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template/1/meta"
        ));
        assert!(template_matches("test://static", "test://static"));
        assert!(!template_matches("test://static", "test://static/x"));
        assert!(template_matches("a{x}b{y}b", "a1bb2b"));
        assert!(template_matches("a{x}b{y}", "abbb"));
        assert!(!template_matches("a{x}b{y}", "ab"));
        assert!(template_matches("x{unclosed", "x{unclosed"));
    }

    #[test]
    fn a_long_uri_is_matched_in_linear_time() {
        // An attacker's URI against a template with many expressions: with backtracking this
        // took minutes; each step here looks at every character a bounded number of times.
        let template = format!("file://{}{{q}}x{{r}}", "{/path*}/".repeat(40));
        let uri = format!("file://{}", "/".repeat(4 << 20));
        assert!(!template_matches(&template, &uri));
        assert!(template_matches(&template, &format!("{uri}x/")));
    }
}
