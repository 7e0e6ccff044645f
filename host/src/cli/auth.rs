//! `auth SERVER`: the OAuth sign-in of a remote server, run at the user's terminal (the
//! protocol and the token file are the client layer's, `client::oauth`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::client::oauth;
use crate::config::Registry;

pub(super) async fn auth(
    path: &Path,
    server: &str,
    logout: bool,
    no_browser: bool,
    tenant: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if let Some(t) = tenant {
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("--tenant {t:?}: tenant names use letters, digits, '-' and '_'");
        }
    }
    let whose = tenant
        .map(|t| format!(" as tenant \"{t}\""))
        .unwrap_or_default();
    if logout {
        let had = oauth::sign_out(server, tenant)?;
        println!(
            "{}",
            if had {
                format!("signed out of \"{server}\"{whose}: its tokens are deleted")
            } else {
                format!("\"{server}\" had no tokens{whose}")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let registry = Registry::load(path)?;
    let Some(config) = registry.server(server) else {
        bail!("{}: no server named \"{server}\"", path.display());
    };
    let config = config
        .expanded(server)
        .with_context(|| format!("{}: server \"{server}\"", path.display()))?;
    let Some(remote) = config.remote.as_ref().filter(|r| r.oauth.is_some()) else {
        bail!(
            "{}: server \"{server}\": field \"auth\": missing; only a remote server with \"auth\": \"oauth\" is signed in to",
            path.display()
        );
    };
    let saved = oauth::sign_in(server, remote, tenant, |url| {
        println!(
            "Open this URL to sign in to \"{server}\"{whose} (waiting for the browser):\n{url}"
        );
        if !no_browser {
            open_browser(url);
        }
    })
    .await?;
    println!(
        "signed in to \"{server}\"{whose} (tokens in {})",
        saved.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Opens `url` in the user's browser, if there is one to open; the URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let opened = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = opened {
        // Reaped off the way: xdg-open may wait for the browser.
        std::thread::spawn(move || child.wait());
    }
}
