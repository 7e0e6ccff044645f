//! Resources and resource templates: which server serves which URI.
//!
//! URIs are not namespaced: they are already global names that clients hand back verbatim,
//! so a session remembers which server listed which URI (or template) and routes reads,
//! subscriptions and completions there.

use std::collections::HashMap;

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
pub fn template_matches(template: &str, uri: &str) -> bool {
    match template.find('{') {
        None => template == uri,
        Some(open) => {
            let Some(close) = template[open..].find('}').map(|c| open + c) else {
                return template == uri;
            };
            let (literal, rest) = (&template[..open], &template[close + 1..]);
            let Some(tail) = uri.strip_prefix(literal) else {
                return false;
            };
            // Try every split point: the expression takes at least one character.
            tail.char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain(std::iter::once(tail.len()))
                .filter(|&i| i > 0)
                .any(|i| template_matches(rest, &tail[i..]))
        }
    }
}

/// Which server listed which resource URI and template, for routing.
#[derive(Default)]
pub(super) struct ResourceOwners {
    uris: HashMap<String, String>,
    templates: Vec<(String, String)>,
}

impl ResourceOwners {
    pub(super) fn find(&self, uri: &str) -> Option<String> {
        self.uris.get(uri).cloned().or_else(|| {
            self.templates
                .iter()
                .find(|(t, _)| t == uri || template_matches(t, uri))
                .map(|(_, server)| server.clone())
        })
    }

    /// Records `server`'s listing of `uris` (replacing its previous one). Two servers
    /// listing one URI: the first by name serves it, as `serve` lists it.
    pub(super) fn listed_uris<'a>(&mut self, server: &str, uris: impl Iterator<Item = &'a str>) {
        self.uris.retain(|_, s| s != server);
        for uri in uris {
            let owner = self
                .uris
                .entry(uri.to_owned())
                .or_insert_with(|| server.to_owned());
            if server < owner.as_str() {
                *owner = server.to_owned();
            }
        }
    }

    /// Records `server`'s listing of templates (replacing its previous one); overlapping
    /// templates go to the first server by name, as for URIs.
    pub(super) fn listed_templates<'a>(
        &mut self,
        server: &str,
        templates: impl Iterator<Item = &'a str>,
    ) {
        self.templates.retain(|(_, s)| s != server);
        for t in templates {
            self.templates.push((t.to_owned(), server.to_owned()));
        }
        self.templates.sort_by(|a, b| a.1.cmp(&b.1));
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
    }
}
