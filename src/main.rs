//! `privgate`: parse the command line and hand over to [`privgate::cli::run`].

#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc. Measured side by side (release build, issue 15,
/// `bench/compare.sh` with the same build preloaded with each allocator): on the protected
/// route glibc spent about 17 % of the process's CPU in malloc and free, and its arena locks
/// made threads wait on each other (a futex wait and wake per request); with mimalloc the
/// route served 1.3x the requests per second at about 23 % less CPU per request and 0.8
/// fewer context switches per request. Its idle-memory price then (10,000 idle TLS
/// connections: 272 MiB against glibc's 215) came mostly from transparent huge pages on
/// its regions, which `privgate serve` turns off (`cli::serve::without_huge_pages`); at
/// 2,000 idle connections the two allocators now hold about the same per connection.
/// jemalloc did as well on CPU and worse on idle memory in an earlier measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    privgate::cli::run()
}
