//! `unmix`: separate mixed multichannel signals into their independent sources.
//!
//! Run `unmix --help` for the commands; `cargo run --release -- demo` separates the
//! bundled demo mixture and prints its scores.

fn main() -> std::process::ExitCode {
    unmix::main()
}
