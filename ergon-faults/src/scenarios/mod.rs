//! Every scenario of the suite, the profiles it belongs to, and the function that runs it.
//!
//! A scenario is a plain function from the [`Suite`] to its [`Report`]; an [`Error`] (a
//! hang, a runner that would not start) becomes a failed report. Add a scenario with one
//! line in [`ALL`].

pub mod address;
pub mod kill;
pub mod network;
pub mod outage;
pub mod poison;
pub mod signals;
pub mod soak;
pub mod summary;

use crate::Profile;
use crate::harness::{Error, Report, Suite};

/// Both profiles.
const BOTH: &[Profile] = &[Profile::Short, Profile::Full];
/// Release checks only (too long for CI).
const FULL: &[Profile] = &[Profile::Full];

/// One scenario: its name (the `scenario=` of its report line), the profiles that run it,
/// and its function.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Its name, unique in [`ALL`].
    pub name: &'static str,
    /// The profiles it is part of.
    pub profiles: &'static [Profile],
    /// Runs it; the name is passed so one function can serve several scenarios.
    pub run: fn(&Suite, &'static str) -> Result<Report, Error>,
}

impl Scenario {
    /// Runs it and returns its report (a failed one when it could not run to its end).
    pub fn report(&self, suite: &Suite) -> Report {
        (self.run)(suite, self.name).unwrap_or_else(|err| Report::aborted(self.name, &err))
    }

    /// Whether `profile` runs it.
    pub fn in_profile(&self, profile: Profile) -> bool {
        self.profiles.contains(&profile)
    }
}

/// A scenario in `profiles`.
const fn scenario(
    name: &'static str,
    profiles: &'static [Profile],
    run: fn(&Suite, &'static str) -> Result<Report, Error>,
) -> Scenario {
    Scenario {
        name,
        profiles,
        run,
    }
}

/// Every scenario, in the order a profile runs them.
pub const ALL: &[Scenario] = &[
    scenario("kill9_local", BOTH, kill::local),
    scenario("kill9_rabbitmq", BOTH, kill::rabbitmq),
    scenario("kill9_postgres", BOTH, kill::postgres),
    scenario("kill9_redis", BOTH, kill::redis),
    scenario("kill9_fan_out", BOTH, kill::fan_out),
    scenario("kill9_dag", BOTH, kill::dag),
    scenario("sigterm_local", BOTH, signals::sigterm_local),
    scenario("sigint_local", BOTH, signals::sigint_local),
    scenario("sigterm_rabbitmq", FULL, signals::sigterm_rabbitmq),
    scenario("sigterm_postgres", FULL, signals::sigterm_postgres),
    scenario("sigterm_redis", FULL, signals::sigterm_redis),
    scenario("poison_local", BOTH, poison::local),
    scenario("poison_rabbitmq", FULL, poison::rabbitmq),
    scenario("poison_postgres", FULL, poison::postgres),
    scenario("poison_redis", FULL, poison::redis),
    scenario("outage_rabbitmq_finite", BOTH, outage::rabbitmq_finite),
    scenario(
        "outage_rabbitmq_streaming",
        FULL,
        outage::rabbitmq_streaming,
    ),
    scenario("outage_postgres_finite", FULL, outage::postgres_finite),
    scenario(
        "outage_postgres_streaming",
        BOTH,
        outage::postgres_streaming,
    ),
    scenario("outage_redis_finite", FULL, outage::redis_finite),
    scenario("outage_redis_streaming", BOTH, outage::redis_streaming),
    scenario("network_rabbitmq", BOTH, network::rabbitmq),
    scenario("network_postgres", FULL, network::postgres),
    scenario("network_redis", FULL, network::redis),
    scenario("soak_local", BOTH, soak::local),
];

/// The scenarios `profile` runs, or those named in `only` (whatever their profile) when
/// it is not empty.
///
/// # Errors
///
/// A name in `only` is no scenario (the message lists them).
pub fn select(profile: Profile, only: &[String]) -> Result<Vec<&'static Scenario>, String> {
    if only.is_empty() {
        return Ok(ALL.iter().filter(|s| s.in_profile(profile)).collect());
    }
    only.iter()
        .map(|name| {
            ALL.iter().find(|s| s.name == name).ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
                format!("no scenario `{name}` (scenarios: {})", names.join(", "))
            })
        })
        .collect()
}
