//! Where the host's files are: the registry, its private data (tokens), and the cache of
//! what it can recompute.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// Environment variable that overrides the default registry path.
pub const CONFIG_ENV: &str = "MCP_REGISTRY_CONFIG";

/// Environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "MCP_REGISTRY_CACHE_DIR";

/// The registry path: `explicit`, else `$MCP_REGISTRY_CONFIG`, else
/// `$XDG_CONFIG_HOME/mcp-registry/config.json`, else `~/.config/mcp-registry/config.json`.
pub fn default_path(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").ok_or(ConfigError::NoPath)?).join(".config"),
    };
    Ok(base.join("mcp-registry").join("config.json"))
}

/// Environment variable that overrides the data directory.
pub const DATA_ENV: &str = "MCP_REGISTRY_DATA_DIR";

/// Where the host keeps what it cannot recompute and must keep private (OAuth tokens):
/// `$MCP_REGISTRY_DATA_DIR`, else `$XDG_DATA_HOME/mcp-registry`, else
/// `~/.local/share/mcp-registry`; `None` if none of them is set.
pub fn data_dir() -> Option<PathBuf> {
    user_dir(DATA_ENV, "XDG_DATA_HOME", &[".local", "share"])
}

/// Where the host keeps what it can recompute (compiled components, servers' protocol eras):
/// `$MCP_REGISTRY_CACHE_DIR`, else `$XDG_CACHE_HOME/mcp-registry`, else
/// `~/.cache/mcp-registry`; `None` if none of them is set.
pub fn cache_dir() -> Option<PathBuf> {
    user_dir(CACHE_ENV, "XDG_CACHE_HOME", &[".cache"])
}

/// `$override_env`, else `$xdg_env/mcp-registry`, else `~/<home_path>/mcp-registry`.
fn user_dir(override_env: &str, xdg_env: &str, home_path: &[&str]) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(override_env).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os(xdg_env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = PathBuf::from(std::env::var_os("HOME")?);
            Some(home_path.iter().fold(home, |p, part| p.join(part)))
        })?;
    Some(base.join("mcp-registry"))
}
