//! Compile-fail tests of `#[cue_sdk::jobs]`: what WIT cannot express, and items that would
//! be part of the interface without being `pub`, are errors pointing at the offending code.

#[test]
fn rejected_job_modules() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
