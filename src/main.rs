//! The slirp-ns binary: the library's command line.

fn main() -> std::process::ExitCode {
    slirp_ns::main()
}
