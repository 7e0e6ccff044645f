//! `deploy/haproxy.cfg` (what `docs/deploy.md` documents) as the scale-out test and the
//! replicas bench run it: the same file, with their own front address and replicas.

use std::path::Path;

/// The documented configuration with `bind FRONT` and one `server` line per replica.
pub fn haproxy_config(root: &Path, front: &str, replicas: &[String]) -> String {
    let documented =
        std::fs::read_to_string(root.join("deploy/haproxy.cfg")).expect("deploy/haproxy.cfg");
    let mut config = String::new();
    for line in documented.lines() {
        match line.split_whitespace().next() {
            Some("bind") => config.push_str(&format!("    bind {front}\n")),
            // The documented replicas; ours are appended (the backend is the last section).
            Some("server") => {}
            _ => config.push_str(&format!("{line}\n")),
        }
    }
    assert!(
        config.contains(&format!("bind {front}")),
        "no bind line in deploy/haproxy.cfg"
    );
    for (i, addr) in replicas.iter().enumerate() {
        config.push_str(&format!("    server r{i} {addr}\n"));
    }
    config
}
