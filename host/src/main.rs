//! The `mcp-registry` binary: a thin shell over [`mcp_registry_host::cli`].

fn main() -> std::process::ExitCode {
    mcp_registry_host::cli::main()
}
