//! Plugins distributed through a real OCI registry (Debian's `docker-registry`, the CNCF
//! distribution registry, started on a loopback port): `push` in the Wasm OCI artifact
//! layout, pull by digest through `describe`, `run`, `run --policy` and `serve --plugin`,
//! the cache by digest with the registry down, and every way a pull must be refused (a
//! tampered blob, a wrong digest, an unsigned component or one signed by another key where a
//! signature is required, a registry that is down); and the WIT package itself, published by
//! version where wkg looks for it.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, guest, http_exchange, mcp_call, peer, served_address, Scratch};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use sha2::Digest;

/// A `docker-registry` process on a free loopback port, its storage in a scratch directory.
struct LocalRegistry {
    child: std::process::Child,
    addr: String,
    storage: PathBuf,
}

impl LocalRegistry {
    async fn start(dir: &Path) -> Option<Self> {
        let bin = peer(
            PathBuf::from("/usr/bin/docker-registry"),
            "the OCI registry (Debian's docker-registry package)",
        )?;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.join("registry-data");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new(bin)
            .args(["serve", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Self {
            child,
            addr,
            storage,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(&registry.addr).await.is_ok()
                && http_exchange(&registry.addr, "GET", "/v2/", &[], "")
                    .await
                    .0
                    == 200
            {
                return Some(registry);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not come up on {}", registry.addr);
    }

    fn url(&self, repo: &str) -> String {
        format!("oci://{}/{repo}", self.addr)
    }

    /// The file the registry serves a blob from.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh ECDSA P-256 key pair written as `NAME.key` (PKCS#8) and `NAME.pub` (SPKI), the
/// forms `openssl genpkey` and `cosign.pub` use.
pub(crate) fn key_pair(s: &Scratch, name: &str) -> (PathBuf, PathBuf) {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let (private, public) = (
        s.path(&format!("{name}.key")),
        s.path(&format!("{name}.pub")),
    );
    std::fs::write(
        &private,
        secret.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        &public,
        secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `push` and the pinned reference it prints.
fn push(s: &Scratch, component: &Path, target: &str, key: Option<&Path>) -> String {
    let mut cmd = s.cli(&["push", component.to_str().unwrap(), target]);
    if let Some(key) = key {
        cmd.arg("--sign-key").arg(key);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "push: {}", stderr(&out));
    let pinned = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(pinned.contains("@sha256:"), "{pinned}");
    pinned
}

fn digest_of(pinned: &str) -> &str {
    pinned.rsplit_once('@').unwrap().1
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

fn describe(s: &Scratch, reference: &str) -> Output {
    s.cli(&["describe", reference]).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_writes_the_wasm_artifact_layout_and_every_command_pulls_by_digest() {
    let s = Scratch::new(json!({}));
    let Some(mut registry) = LocalRegistry::start(s.dir.path()).await else {
        return;
    };
    let probe = guest("probe");
    let pinned = push(&s, &probe, &registry.url("plugins/probe:v1"), None);
    let digest = digest_of(&pinned).to_owned();

    // What another tool of the Wasm OCI convention reads: the manifest, its config, its layer.
    let accept = [("accept", "application/vnd.oci.image.manifest.v1+json")];
    let (status, _, manifest) = http_exchange(
        &registry.addr,
        "GET",
        &format!("/v2/plugins/probe/manifests/{digest}"),
        &accept,
        "",
    )
    .await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(
        sha256(manifest.as_bytes()),
        digest,
        "the digest names the manifest"
    );
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], sha256(&std::fs::read(&probe).unwrap()));
    let config_path = format!(
        "/v2/plugins/probe/blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    );
    let (_, _, config) = http_exchange(&registry.addr, "GET", &config_path, &[], "").await;
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        (&config["architecture"], &config["os"]),
        (&json!("wasm"), &json!("wasip2"))
    );
    assert_eq!(config["layerDigests"][0], layers[0]["digest"]);
    let imports = config["component"]["imports"].to_string();
    let exports = config["component"]["exports"].to_string();
    assert!(
        imports.contains("wasi:") && imports.contains("registry"),
        "{imports}"
    );
    assert!(
        exports.contains("run") && exports.contains("describe"),
        "{exports}"
    );

    // describe and run by digest.
    let out = describe(&s, &pinned);
    assert!(out.status.success(), "{}", stderr(&out));
    let description: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(description["inputSchema"].is_object(), "{description}");
    let out = s
        .cli(&["run", &pinned, "--input", r#"{"op": "noop"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({})
    );

    // A tag works, with a warning that names the digest to pin.
    let out = describe(&s, &registry.url("plugins/probe:v1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tags move") && err.contains(&pinned), "{err}");

    // serve --plugin by digest: the plugin is a tool named after its repository.
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--http", "127.0.0.1:0", "--plugin", &pinned])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut serve).await;
    let (status, text) = mcp_call(&addr, None, "probe", json!({"op": "noop"}), json!({})).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    serve.kill().await.unwrap();

    // Cached by digest: with the registry gone, the pinned reference still runs; a tag,
    // which needs the registry to resolve, says the registry cannot be reached.
    registry.stop();
    let out = describe(&s, &pinned);
    assert!(out.status.success(), "from the cache: {}", stderr(&out));
    let out = describe(&s, &registry.url("plugins/probe:v1"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach the registry {}", registry.addr)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blobs_wrong_digests_and_a_down_registry_are_refused() {
    let s = Scratch::new(json!({}));
    let Some(mut registry) = LocalRegistry::start(s.dir.path()).await else {
        return;
    };
    let probe = guest("probe");
    let pinned = push(&s, &probe, &registry.url("plugins/probe:v1"), None);

    // The registry's copy of the component changed behind its digest (same length, one
    // byte flipped): the pull is refused and nothing is cached.
    let layer = sha256(&std::fs::read(&probe).unwrap());
    let file = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let out = describe(&s, &pinned);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&pinned) && err.contains("does not match its digest"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let blobs = s.cache().join("oci/blobs");
    assert_eq!(
        std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0),
        0,
        "a refused component is not cached"
    );

    // The manifest itself changed behind its digest.
    let fanout = push(
        &s,
        &guest("fanout"),
        &registry.url("plugins/fanout:v1"),
        None,
    );
    let file = registry.blob_file(digest_of(&fanout));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("\"schemaVersion\":2", "\"schemaVersion\": 2"),
    )
    .unwrap();
    let err = stderr(&describe(&s, &fanout));
    assert!(
        err.contains(&fanout) && err.contains("does not match its digest"),
        "{err}"
    );

    // A digest the registry does not have.
    let wrong = format!(
        "{}@sha256:{}",
        registry.url("plugins/probe"),
        "0".repeat(64)
    );
    let err = stderr(&describe(&s, &wrong));
    assert!(
        err.contains(&wrong) && err.contains("no such manifest"),
        "{err}"
    );

    // Not a digest at all, and not a registry reference.
    let err = stderr(&describe(
        &s,
        &format!("{}@sha256:abc", registry.url("plugins/probe")),
    ));
    assert!(err.contains("a sha256 digest is 64 hex digits"), "{err}");

    // The registry down, nothing cached for this digest.
    registry.stop();
    let err = stderr(&describe(&s, &pinned));
    assert!(err.contains("cannot reach the registry"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_requires_a_signature_runs_only_what_its_key_signed() {
    let s = Scratch::new(json!({}));
    let Some(registry) = LocalRegistry::start(s.dir.path()).await else {
        return;
    };
    let (ours, ours_pub) = key_pair(&s, "ours");
    let (theirs, _) = key_pair(&s, "theirs");
    let probe = guest("probe");
    let fanout = guest("fanout");
    let signed = push(
        &s,
        &probe,
        &registry.url("plugins/probe:signed"),
        Some(&ours),
    );
    let unsigned = push(&s, &fanout, &registry.url("plugins/fanout:v1"), None);
    let stranger = push(
        &s,
        &fanout,
        &registry.url("plugins/other:v1"),
        Some(&theirs),
    );

    // The signature is stored where cosign keeps it: tag sha256-HEX.sig, a simple-signing
    // layer with the signature in its annotation.
    let sig_tag = digest_of(&signed).replacen(':', "-", 1) + ".sig";
    let (status, _, sig) = http_exchange(
        &registry.addr,
        "GET",
        &format!("/v2/plugins/probe/manifests/{sig_tag}"),
        &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{sig}");
    let sig: Value = serde_json::from_str(&sig).unwrap();
    let layer = &sig["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(layer["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    let policy = |component: &str| {
        let file = s.path("policy.json");
        std::fs::write(
            &file,
            json!({"plugins": {"p": {
                "component": component, "signed_by": ["ours.pub"], "input": {"op": "noop"}
            }}})
            .to_string(),
        )
        .unwrap();
        s.cli(&["run", "--policy", file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = policy(&signed);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["p"]["ok"], json!({}), "{report}");

    let err = stderr(&policy(&unsigned));
    assert!(
        err.contains(&unsigned) && err.contains("not signed"),
        "{err}"
    );
    assert!(err.contains("ours.pub"), "names the key it wanted: {err}");
    let err = stderr(&policy(&stranger));
    assert!(
        err.contains("none of its 1 signature(s) verifies with"),
        "{err}"
    );
    let err = stderr(&policy(probe.to_str().unwrap()));
    assert!(err.contains("a local file has none"), "{err}");

    // The same check on the command line.
    let out = s
        .cli(&["run", &stranger, "--signed-by", ours_pub.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("verifies with"), "{}", stderr(&out));

    // A key file that is not a key: the policy error names the file, the plugin and the field.
    std::fs::write(s.path("ours.pub"), "not a key").unwrap();
    let err = stderr(&policy(&signed));
    assert!(
        err.contains("policy.json") && err.contains("\"p\"") && err.contains("signed_by"),
        "{err}"
    );
}

/// `wit --out` writes the contract as a binary WIT package and `push` publishes it in the Wasm
/// OCI layout at REGISTRY/mcp-registry/plugin:VERSION, the repository and tag wkg derives from
/// `mcp-registry:plugin@VERSION`; what the registry serves is a package a WIT tool reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wit_package_is_published_by_version_for_wit_tools() {
    let s = Scratch::new(json!({}));
    let Some(registry) = LocalRegistry::start(s.dir.path()).await else {
        return;
    };
    let package = s.path("plugin-wit.wasm");
    let out = s
        .cli(&["wit", "--out", package.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let version = stderr(&out)
        .split_once("mcp-registry:plugin@")
        .and_then(|(_, rest)| rest.split_once(','))
        .map(|(v, _)| v.to_owned())
        .unwrap_or_else(|| panic!("{}", stderr(&out)));
    push(
        &s,
        &package,
        &format!("{}:{version}", registry.url("mcp-registry/plugin")),
        None,
    );

    let (status, _, manifest) = http_exchange(
        &registry.addr,
        "GET",
        &format!("/v2/mcp-registry/plugin/manifests/{version}"),
        &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{manifest}");
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let bytes = std::fs::read(&package).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(layer, sha256(&bytes));
    let served = registry.blob_file(layer);
    assert_eq!(std::fs::read(&served).unwrap(), bytes);

    // Bindings generate from it as from a wit/ directory (wit-bindgen's generator reading the
    // binary package, as it does in wit-bindgen's CLI).
    let fetched = s.path("fetched-plugin-wit.wasm");
    std::fs::copy(&served, &fetched).unwrap();
    let gen = s.path("gen");
    let out = s
        .cli(&[
            "bindings",
            "c",
            "--wit",
            fetched.to_str().unwrap(),
            "--out-dir",
        ])
        .arg(&gen)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let header = std::fs::read_to_string(gen.join("orchestrator.h")).unwrap();
    assert!(
        header.contains("mcp_registry_plugin_registry_static_session_open")
            && header.contains("mcp_registry_plugin_progress_report"),
        "{header}"
    );
}
