//! The one integration-test binary: each module tests one area against the real processes,
//! files and signatures.

mod ledger;
mod ledger_crash;
mod ledger_fuzz_corpus;
mod ledger_props;
