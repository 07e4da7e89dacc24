//! `ergon-faults [--profile short|full] [--only NAME]...`: runs the scenarios of a profile
//! (or the named ones), prints one report line each as it ends, and exits 1 if any failed.

use std::process::ExitCode;

use clap::Parser;
use ergon_faults::Profile;
use ergon_faults::harness::Suite;
use ergon_faults::scenarios;

/// ergon's fault suite.
#[derive(Parser)]
#[command(name = "ergon-faults")]
struct Args {
    /// `short` (CI: small volumes, a short soak) or `full` (release checks).
    #[arg(long, default_value = "short")]
    profile: Profile,
    /// Run only this scenario (repeatable), whatever its profile.
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let selected = match scenarios::select(args.profile, &args.only) {
        Ok(selected) => selected,
        Err(err) => {
            eprintln!("ergon-faults: {err}");
            return ExitCode::from(2);
        }
    };
    let suite = match Suite::locate(args.profile) {
        Ok(suite) => suite,
        Err(err) => {
            eprintln!("ergon-faults: {err}");
            return ExitCode::from(2);
        }
    };
    let mut failed = 0;
    for scenario in selected {
        let report = scenario.report(&suite);
        println!("{report}");
        if !report.ok() {
            failed += 1;
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("ergon-faults: {failed} scenario(s) failed");
        ExitCode::FAILURE
    }
}
