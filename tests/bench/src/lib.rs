//! `warden-bench`: starts Warden as real processes (all-in-one on SQLite, or split mode on
//! PostgreSQL + Redis), drives every scenario of issue 11 with its own HTTP/1.1 and gRPC load
//! loops, measures the machine's ceilings, and prints markdown tables with the ratios and the
//! targets. See BENCHMARKS.md for how to run it and what it found.
pub mod ceiling;
pub mod cli;
pub mod drill;
pub mod fixtures;
pub mod fleet;
pub mod floor;
pub mod growth;
pub mod h2;
pub mod http;
pub mod load;
pub mod login_rounds;
pub mod pacer;
pub mod process_args;
pub mod procs;
pub mod redis_mem;
pub mod relay;
pub mod report;
pub mod scenarios;
pub mod seed;
pub mod steadiness;
pub mod workers;
