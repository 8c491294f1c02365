use std::process::ExitCode;

/// jemalloc returns the memory a burst used (the search index rebuilt from the registry) to the system; glibc's
/// allocator kept it, so a gateway stayed near its highest resident size for good (docs/reliability.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // rustls cannot choose a process-wide crypto provider when more than one is compiled in; pick ours first.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    conductor::cli::run()
}
