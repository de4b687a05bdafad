//! `privgate`: parse the command line and hand over to [`privgate::cli::run`].

#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc. Measured side by side (release build, issue 15,
/// `bench/compare.sh` with the same build preloaded with each allocator): on the protected
/// route glibc spent about 17 % of the process's CPU in malloc and free, and its arena locks
/// made threads wait on each other (a futex wait and wake per request); with mimalloc the
/// route served 1.3x the requests per second at about 23 % less CPU per request and 0.8
/// fewer context switches per request. The price is idle memory: 10,000 idle TLS
/// connections held 272 MiB against glibc's 215 (`bench/idle-connections.sh`, about 5.7 KB
/// more per connection) and 366 MiB against 242 once they had closed; the crate's mimalloc
/// v2 (feature `v2`) held 265 open. Taken for the CPU, which a gateway runs out of first.
/// jemalloc did as well on CPU and worse on idle memory in an earlier measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    privgate::cli::run()
}
