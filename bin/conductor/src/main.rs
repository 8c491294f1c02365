use std::process::ExitCode;

fn main() -> ExitCode {
    // rustls cannot choose a process-wide crypto provider when more than one is compiled in; pick ours first.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    conductor::cli::run()
}
