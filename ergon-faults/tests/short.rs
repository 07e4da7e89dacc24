//! The fault suite's short profile, so that `cargo test --workspace` (what CI runs) runs
//! every scenario of it against the loopback services: one report line each, printed,
//! and every one must be `result=ok`.
//!
//! One test, so the scenarios run one after another (several restart a broker).

use ergon_faults::Profile;
use ergon_faults::harness::Suite;
use ergon_faults::scenarios;

#[test]
fn every_scenario_of_the_short_profile_passes() {
    let suite = Suite {
        runner: env!("CARGO_BIN_EXE_ergon-faults-runner").into(),
        profile: Profile::Short,
    };
    let selected = scenarios::select(Profile::Short, &[]).expect("the short profile");
    assert!(!selected.is_empty(), "the short profile has scenarios");
    let mut failed = Vec::new();
    for scenario in selected {
        let report = scenario.report(&suite);
        // stderr is shown by `cargo test` for a failing test, and at once with --nocapture.
        eprintln!("{report}");
        if !report.ok() {
            failed.push(report.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n")
    );
}
