//! The plugin host's errors, and how a failed run is counted.

use std::path::PathBuf;
use std::time::Duration;

use super::TrapKind;

/// Errors of the plugin host (loading, instantiating, running).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The component file could not be read.
    #[error("{}: cannot read plugin: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid component for this world.
    #[error("{name}: not a valid orchestrator component: {message}")]
    Invalid {
        /// Plugin name.
        name: String,
        /// What wasmtime reported.
        message: String,
    },
    /// The plugin trapped (or was stopped by a limit) in `describe` or `run`.
    #[error("plugin {name}: trapped: {message}")]
    Trap {
        /// Plugin name.
        name: String,
        /// The trap.
        message: String,
        /// Which bound stopped it, if one did.
        kind: TrapKind,
    },
    /// The run exceeded its wall-clock deadline and was stopped.
    #[error("plugin {name}: stopped after its deadline of {deadline:?}")]
    Deadline {
        /// Plugin name.
        name: String,
        /// The deadline.
        deadline: Duration,
    },
    /// `run` returned an error string.
    #[error("plugin {name}: {message}")]
    Failed {
        /// Plugin name.
        name: String,
        /// The guest's message.
        message: String,
    },
    /// `describe` did not return the expected JSON.
    #[error("plugin {name}: describe() must return {{\"name\", \"description\", \"inputSchema\"}}: {message}")]
    Describe {
        /// Plugin name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The engine could not be set up.
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// The component could not be fetched from its registry, or failed its digest or
    /// signature check (nothing was compiled).
    #[error(transparent)]
    Fetch(#[from] crate::oci::OciError),
}

impl PluginError {
    /// How a failed run ended, as metrics count it: `deadline`, `fuel`, `memory` or `stack`
    /// (a limit hit), `trap`, or `failed` (the guest's own error, or the host's).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Deadline { .. } => "deadline",
            Self::Trap { kind, .. } => match kind {
                TrapKind::Fuel => "fuel",
                TrapKind::Memory => "memory",
                TrapKind::Stack => "stack",
                TrapKind::Deadline => "deadline",
                _ => "trap",
            },
            _ => "failed",
        }
    }
}
