//! The provider policy options `cue benchmark` and `cue node --provide` share.

use std::time::Duration;

use clap::Args;

use crate::market::ProviderPolicy;
use crate::sandbox::{parse_bytes, parse_duration};

/// What a provider charges and the bounds it puts on each job.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Price of one million fuel, in the smallest unit of CUE
    #[arg(long, value_name = "N", default_value_t = 1)]
    price_per_mfuel: u64,
    /// Fixed price of any job, in the smallest unit of CUE
    #[arg(long, value_name = "N", default_value_t = 0)]
    base_fee: u64,
    /// Jobs run at once [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_jobs: Option<u32>,
    /// Largest memory one job may have, e.g. 512MiB
    #[arg(long, value_parser = parse_bytes, default_value = "512MiB")]
    max_memory: u64,
    /// Longest one job may run, e.g. 30s
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    max_time: Duration,
}

impl PolicyArgs {
    /// The policy these options describe.
    pub fn policy(&self) -> ProviderPolicy {
        let cores =
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        ProviderPolicy {
            price_per_mfuel: self.price_per_mfuel,
            base_fee: self.base_fee,
            max_concurrent_jobs: self.max_jobs.unwrap_or(cores),
            max_memory_bytes: self.max_memory,
            max_execution_ms: u64::try_from(self.max_time.as_millis()).unwrap_or(u64::MAX),
        }
    }
}
