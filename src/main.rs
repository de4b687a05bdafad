//! `privgate`: parse the command line and hand over to [`privgate::cli::run`].

fn main() -> std::process::ExitCode {
    privgate::cli::run()
}
