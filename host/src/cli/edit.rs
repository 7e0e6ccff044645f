//! `edit`: the registry file in the user's editor (`$VISUAL`, else `$EDITOR`, else `vi`), as
//! the seed does. The previous version is kept as `FILE.bak`; the new one is validated when
//! the editor exits, and on an error the user is offered another go (at a terminal). An edit
//! given up on is set aside as `FILE.rejected` and the previous version put back: nothing is
//! lost either way.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::config::Registry;

/// `path` with `suffix` appended to its file name (`config.json.bak`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs the editor on `path` and waits for it.
fn run_editor(path: &Path) -> anyhow::Result<()> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    // Through the shell, so `EDITOR="code --wait"` works as it does for git.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .with_context(|| format!("starting the editor `{editor}`"))?;
    if !status.success() {
        bail!("the editor `{editor}` exited with {status}");
    }
    Ok(())
}

/// Asks whether to edit again (only at a terminal); defaults to yes.
fn again() -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("edit again? [Y/n] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    !answer.trim().to_lowercase().starts_with('n')
}

/// `edit`.
pub(super) fn edit(path: &Path) -> anyhow::Result<ExitCode> {
    if !path.exists() {
        Registry::load_or_default(path)?.save()?;
    }
    let backup = with_suffix(path, ".bak");
    std::fs::copy(path, &backup)
        .with_context(|| format!("keeping the previous version as {}", backup.display()))?;
    loop {
        run_editor(path)?;
        match Registry::load(path) {
            Ok(_) => {
                println!(
                    "{} is valid; the previous version is in {}",
                    path.display(),
                    backup.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => {
                eprintln!("error: {e}");
                if again() {
                    continue;
                }
                let rejected = with_suffix(path, ".rejected");
                std::fs::copy(path, &rejected)?;
                std::fs::copy(&backup, path)?;
                bail!(
                    "the edit was not saved: the previous version is back in {}, your edit is in {}",
                    path.display(),
                    rejected.display()
                );
            }
        }
    }
}
