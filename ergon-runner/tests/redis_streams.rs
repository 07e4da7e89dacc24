//! A `redis_streams` input through the real `ergon-runner` binary, against the local Redis
//! (`127.0.0.1:6379`, or `ERGON_TEST_REDIS_URL`): `validate --connect`, a finite run that
//! forwards every entry to a file and ends when the group is drained, and `queue stats`.

mod common;

use common::run_ok as run;

fn url() -> String {
    std::env::var("ERGON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[test]
fn a_finite_run_forwards_every_entry_and_drains_the_group() {
    let stream = format!(
        "ergon-runner-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client
        .get_connection()
        .unwrap_or_else(|err| panic!("Redis is not reachable at {} ({err})", url()));
    let n = 2_000;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("id")
            .arg(format!("o-{i}"))
            .arg("payload")
            .arg(format!("{{\"n\":{i}}}"))
            .arg("metadata")
            .arg("{}")
            .ignore();
    }
    pipe.query::<()>(&mut conn).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.inbox]
type = "redis_streams"
url = "{url}"
stream = "{stream}"

[connectors.done]
type = "file"
path = "done.jsonl"

[tasks.drain]
type = "forward"
input = "inbox"
output = "done"

[tasks.drain.policy.loop]
concurrency = 64
"#,
            url = url()
        ),
    )
    .unwrap();

    run(&config, &["validate", "--connect"]);
    run(&config, &["run"]);
    let done = std::fs::read_to_string(dir.path().join("done.jsonl")).unwrap();
    let mut lines: Vec<&str> = done.lines().collect();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), n, "every entry once");
    assert!(lines.contains(&"{\"n\":1999}"));
    let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut conn).unwrap();
    assert_eq!(len, 0, "acked entries are deleted");

    let out = run(&config, &["queue", "stats", "inbox"]);
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(stats.contains("length=0 pending=0 lag=0 dead=0"), "{stats}");
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .arg(format!("{stream}:dead"))
        .query(&mut conn)
        .unwrap();
}
