//! Information-flow control for one context (a client session of `serve`, a plugin run, a
//! code-mode snippet): the labels of every tool it calls join into its taint, and a context
//! that has taken in both private data and untrusted content calls no tool that sends data
//! out. A run started from a client session shares the session's taint: it starts with
//! what the session has read, and what it reads reaches the session with its result.
//!
//! That is the "lethal trifecta": untrusted text can carry instructions, private data is
//! what they would be after, an egress tool is how it leaves. A model cannot argue with a
//! rule enforced here, beneath every call of the run. A call's labels join the taint when it
//! starts, not when the guest reads its result: once started, its result may flow anywhere
//! in the run, and the host cannot see whether it does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::config::{Labels, ServerLabels};
use crate::names::ToolName;

/// Labels a principal adds to the registry's (a tenant's `labels`), by server.
pub type AddedLabels = Arc<BTreeMap<String, ServerLabels>>;

/// What `added` adds to `name`'s labels.
pub fn added(added: &BTreeMap<String, ServerLabels>, name: &ToolName) -> Labels {
    added
        .get(name.server())
        .map(|l| l.of(name.tool()))
        .unwrap_or_default()
}

/// What `added` adds to every tool, resource and prompt of `server`.
pub fn added_to_server(added: &BTreeMap<String, ServerLabels>, server: &str) -> Labels {
    added.get(server).map(|l| l.server).unwrap_or_default()
}

/// A context's taint, shared between a client session and the runs it starts.
pub type SharedTaint = Arc<Mutex<Taint>>;

/// Tools named in a refusal for each label, at most (the taint of a long run stays small).
const NAMED: usize = 3;

/// What a context has taken in so far, and from which tools.
#[derive(Debug, Default)]
pub struct Taint {
    /// Tools whose results were private data (the first few).
    private: Vec<ToolName>,
    /// Tools whose results were untrusted content (the first few).
    untrusted: Vec<ToolName>,
}

impl Taint {
    /// Whether the run may call `name`, whose labels are `labels`; `Err` names the rule and
    /// the calls that tainted the run.
    ///
    /// A tool that reaches private data itself (labelled private and egress: a mailbox that
    /// can send) needs no earlier private read: once the context has taken in untrusted
    /// content, instructions in it could have the tool send what it holds.
    pub fn check(&self, name: &ToolName, labels: Labels) -> Result<(), String> {
        let private_itself = labels.private && self.private.is_empty();
        if !labels.egress
            || self.untrusted.is_empty()
            || (self.private.is_empty() && !labels.private)
        {
            return Ok(());
        }
        let names = |tools: &[ToolName]| {
            tools
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let private = if private_itself {
            format!("its own private data ({name})")
        } else {
            format!("private data ({})", names(&self.private))
        };
        Err(format!(
            "flow control: \"{name}\" can send data out, and this context has read {private} \
             and untrusted content ({}); one that has read both may not send anything out \
             (rule private+untrusted -> no egress)",
            names(&self.untrusted)
        ))
    }

    /// Joins `name`'s labels into the run's.
    pub fn add(&mut self, name: &ToolName, labels: Labels) {
        for (set, has) in [
            (&mut self.private, labels.private),
            (&mut self.untrusted, labels.untrusted),
        ] {
            if has && set.len() < NAMED && !set.contains(name) {
                set.push(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ToolName {
        ToolName::parse(s).unwrap()
    }

    #[test]
    fn egress_is_refused_only_after_private_and_untrusted() {
        let private = Labels {
            private: true,
            ..Labels::default()
        };
        let untrusted = Labels {
            untrusted: true,
            ..Labels::default()
        };
        let egress = Labels {
            egress: true,
            ..Labels::default()
        };
        let mut taint = Taint::default();
        assert!(taint.check(&name("out__post"), egress).is_ok());
        taint.add(&name("vault__read"), private);
        assert!(taint.check(&name("out__post"), egress).is_ok());
        taint.add(&name("web__fetch"), untrusted);
        let refused = taint.check(&name("out__post"), egress).unwrap_err();
        assert!(
            refused.contains("vault__read") && refused.contains("web__fetch"),
            "{refused}"
        );
        // Tools that send nothing out are still called.
        assert!(taint.check(&name("vault__read"), private).is_ok());
        // A tool that holds private data and sends it needs no earlier private read.
        let mut taint = Taint::default();
        let mailbox = Labels {
            private: true,
            egress: true,
            ..Labels::default()
        };
        assert!(taint.check(&name("mail__send"), mailbox).is_ok());
        taint.add(&name("web__fetch"), untrusted);
        assert!(taint.check(&name("mail__send"), mailbox).is_err());
    }
}
