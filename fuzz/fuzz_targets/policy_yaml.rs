//! `cargo fuzz run policy_yaml`: see `eastwest_policy::fuzzing::policy_yaml` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_policy::fuzzing::policy_yaml(data);
});
