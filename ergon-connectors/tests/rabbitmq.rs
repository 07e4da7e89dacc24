//! The RabbitMQ connector against the real local broker
//! (`amqp://guest:guest@127.0.0.1:5672`): round trip with lineage and trace headers,
//! acks only for settled deliveries, dead letters (with error headers, and through the
//! queue's dead-letter exchange), requeue, the prefetch bound, a hybrid that acks its input
//! only after the output confirmed, unroutable dispatches, and a connection killed
//! mid-stream with nothing lost. Each test uses queues of its own, deleted at the end.
#![cfg(feature = "rabbitmq")]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ergon_connectors::rabbitmq::{
    DeadLetterConfig, QueueKind, RabbitConfig, RabbitConnector, RabbitKind, meta,
};
use ergon_core::config::{ConfigEnv, ConnectorKind};
use ergon_core::lifecycle::HybridLifecycle;
use ergon_core::runner::{ConsumeLoop, LoopEnd};
use ergon_core::{
    Category, Connector, Context, Delivery, Failure, Hybrid, HybridPolicy, Settlement, TaskError,
    Transaction,
};
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use support::{URL, delete, depth, kill_connections, raw, unique};

fn config(queue: &str) -> RabbitConfig {
    RabbitConfig {
        url: URL.into(),
        queue: Some(queue.to_owned()),
        fetch_wait: Duration::from_millis(100),
        ..RabbitConfig::default()
    }
}

async fn connector(config: RabbitConfig) -> RabbitConnector {
    RabbitConnector::connect(Arc::new(config), "test".into())
        .await
        .unwrap()
}

/// `n` transactions `t-0`, … with payload `{"n":i}`, lineage and a trace context.
fn transactions(n: usize) -> Vec<Transaction> {
    let parent = Transaction::builder("parent-1")
        .meta(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .build();
    (0..n)
        .map(|i| {
            parent
                .child(format!("t-{i}"), format!("{{\"n\":{i}}}"))
                .build()
        })
        .collect()
}

/// Fetches until `n` deliveries arrived (or a fetch comes back empty twice).
async fn fetch_n(input: &dyn Connector, n: usize) -> Vec<Delivery> {
    let mut all = Vec::new();
    let mut empty = 0;
    while all.len() < n && empty < 20 {
        let batch = input.fetch(n - all.len()).await.unwrap();
        if batch.is_empty() {
            empty += 1;
        }
        all.extend(batch);
    }
    all
}

fn failure() -> Failure {
    Failure {
        task: "orders".into(),
        step: "process",
        category: Category::Business,
        message: "total is negative".into(),
        attempts: 1,
    }
}

#[tokio::test]
async fn dispatched_transactions_come_back_with_ids_lineage_and_trace_context() {
    let queue = unique("roundtrip");
    let output = connector(config(&queue)).await;
    output.dispatch(&transactions(50)).await.unwrap();

    let input = connector(config(&queue)).await;
    let received = fetch_n(&input, 50).await;
    assert_eq!(received.len(), 50);
    let ids: BTreeSet<&str> = received.iter().map(|d| d.transaction().id()).collect();
    assert_eq!(ids.len(), 50);
    for delivery in &received {
        let tx = delivery.transaction();
        let n: usize = tx.id().strip_prefix("t-").unwrap().parse().unwrap();
        assert_eq!(tx.payload(), format!("{{\"n\":{n}}}").as_bytes());
        assert_eq!(tx.parent_id(), Some("parent-1"));
        assert_eq!(
            tx.meta("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(tx.deliveries(), 1);
        assert_eq!(tx.meta(meta::ROUTING_KEY), Some(queue.as_str()));
        let keys: Vec<&String> = tx.metadata().keys().collect();
        assert!(
            !keys.iter().any(|k| k.contains("deliver")),
            "no delivery state in metadata: {keys:?}"
        );
        input.settle(delivery, &Settlement::Ack).await.unwrap();
    }
    input.close().await.unwrap();
    output.close().await.unwrap();

    let channel = raw().await;
    assert_eq!(
        depth(&channel, &queue).await,
        0,
        "every acked message is gone"
    );
    delete(&channel, &[&queue]).await;
}

#[tokio::test]
async fn only_settled_deliveries_are_acked() {
    let queue = unique("partial");
    let output = connector(config(&queue)).await;
    output.dispatch(&transactions(10)).await.unwrap();

    let input = connector(config(&queue)).await;
    let received = fetch_n(&input, 10).await;
    assert_eq!(received.len(), 10);
    // Settle every other one; the rest are still "in flight" when the worker goes away.
    let settled: BTreeSet<String> = received
        .iter()
        .step_by(2)
        .map(|d| d.transaction().id().to_owned())
        .collect();
    for delivery in received.iter().step_by(2) {
        input.settle(delivery, &Settlement::Ack).await.unwrap();
    }
    input.close().await.unwrap();

    let again = connector(config(&queue)).await;
    let redelivered = fetch_n(&again, 5).await;
    let ids: BTreeSet<String> = redelivered
        .iter()
        .map(|d| d.transaction().id().to_owned())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.is_disjoint(&settled), "an acked delivery came back");
    for delivery in &redelivered {
        assert_eq!(
            delivery.transaction().deliveries(),
            2,
            "flagged redelivered"
        );
        again.settle(delivery, &Settlement::Ack).await.unwrap();
    }
    again.close().await.unwrap();
    output.close().await.unwrap();
    let channel = raw().await;
    assert_eq!(depth(&channel, &queue).await, 0);
    delete(&channel, &[&queue]).await;
}

#[tokio::test]
async fn dead_letters_go_to_their_queue_with_the_error_in_headers() {
    let queue = unique("dl");
    let dead = unique("dl-dead");
    let mut config = config(&queue);
    config.dead_letter = Some(DeadLetterConfig {
        queue: dead.clone(),
    });
    let connector = connector(config).await;
    connector.dispatch(&transactions(3)).await.unwrap();
    let received = fetch_n(&connector, 3).await;
    for tx in &received {
        connector
            .settle(tx, &Settlement::DeadLetter(failure()))
            .await
            .unwrap();
    }
    connector.close().await.unwrap();

    let channel = raw().await;
    assert_eq!(depth(&channel, &queue).await, 0, "dead letters are acked");
    assert_eq!(depth(&channel, &dead).await, 3);
    let letter = channel
        .basic_get(ShortString::from(dead.as_str()), Default::default())
        .await
        .unwrap()
        .expect("a dead letter");
    let headers = letter.delivery.properties.headers().clone().unwrap();
    let header = |key: &str| match headers.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(header("x-ergon-error-category"), "business");
    assert_eq!(header("x-ergon-error-message"), "total is negative");
    assert_eq!(header("x-ergon-attempts"), "1");
    assert_eq!(header("x-ergon-task"), "orders");
    assert_eq!(header("x-ergon-step"), "process");
    assert_eq!(header("ergon.parent_id"), "parent-1", "lineage kept");
    delete(&channel, &[&queue, &dead]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_admin_lists_and_requeues_the_dead_letter_queue() {
    let queue = unique("adm");
    let dead = unique("adm-dead");
    let env = ConfigEnv {
        name: "orders".into(),
        base_dir: ".".into(),
    };
    let table = serde_json::json!({
        "url": URL, "queue": queue, "fetch_wait": "100ms", "dead_letter": { "queue": dead },
    });
    let make = RabbitKind.configure(table.clone(), &env).unwrap();
    let input = make.connect(0).await.unwrap();
    input.dispatch(&transactions(3)).await.unwrap();
    for tx in fetch_n(input.as_ref(), 3).await {
        input
            .settle(&tx, &Settlement::DeadLetter(failure()))
            .await
            .unwrap();
    }
    input.close().await.unwrap();

    let admin = make
        .admin()
        .await
        .unwrap()
        .expect("a dead-letter queue of its own");
    let stats = admin.stats().await.unwrap();
    assert_eq!(
        stats.to_string(),
        format!("queue={queue} ready=0 consumers=0 dead=3")
    );
    let letters = admin.dead_letters(10).await.unwrap();
    let ids: BTreeSet<&str> = letters.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["t-0", "t-1", "t-2"]));
    let letter = letters.iter().find(|l| l.id == "t-1").unwrap();
    assert_eq!(letter.payload, b"{\"n\":1}");
    assert_eq!(letter.deliveries, 1);
    assert!(letter.failed_at_ms.is_some());
    let failure = letter.failure.as_ref().unwrap();
    assert_eq!(failure["error"], "total is negative");
    assert_eq!(failure["attempts"], 1);
    assert_eq!(failure["task"], "orders");
    assert!(
        admin.stats().await.unwrap().to_string().ends_with("dead=3"),
        "listing moves nothing"
    );

    assert_eq!(admin.requeue_dead().await.unwrap(), 3);
    let stats = admin.stats().await.unwrap();
    assert_eq!(
        stats.to_string(),
        format!("queue={queue} ready=3 consumers=0 dead=0")
    );
    let input = make.connect(0).await.unwrap();
    let back = fetch_n(input.as_ref(), 3).await;
    assert_eq!(back.len(), 3);
    for tx in &back {
        assert_eq!(tx.deliveries(), 1, "the count starts over");
        assert!(
            tx.meta("x-ergon-error-message").is_none(),
            "{:?}",
            tx.metadata()
        );
        assert_eq!(tx.meta("ergon.parent_id"), Some("parent-1"), "lineage kept");
        input.settle(tx, &Settlement::Ack).await.unwrap();
    }
    input.close().await.unwrap();
    // Without a dead-letter queue of its own, there is nothing for `queue` to administer.
    let mut plain = table;
    plain.as_object_mut().unwrap().remove("dead_letter");
    let make = RabbitKind.configure(plain, &env).unwrap();
    assert!(make.admin().await.unwrap().is_none());
    delete(&raw().await, &[&queue, &dead]).await;
}

#[tokio::test]
async fn without_a_dead_letter_queue_a_rejected_delivery_takes_the_queues_dead_letter_exchange() {
    let queue = unique("dlx");
    let dead = unique("dlx-dead");
    let channel = raw().await;
    channel
        .queue_declare(
            ShortString::from(dead.as_str()),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut config = config(&queue);
    config
        .declare
        .arguments
        .insert("x-dead-letter-exchange".into(), serde_json::json!(""));
    config
        .declare
        .arguments
        .insert("x-dead-letter-routing-key".into(), serde_json::json!(dead));
    let connector = connector(config).await;
    connector.dispatch(&transactions(2)).await.unwrap();
    for delivery in fetch_n(&connector, 2).await {
        connector
            .settle(&delivery, &Settlement::DeadLetter(failure()))
            .await
            .unwrap();
    }
    connector.close().await.unwrap();
    assert_eq!(depth(&channel, &queue).await, 0);
    assert_eq!(depth(&channel, &dead).await, 2);
    delete(&channel, &[&queue, &dead]).await;
}

/// Requeues one message three times on a queue of `kind`: it comes back each time with
/// one more delivery, its metadata unchanged.
async fn requeues_are_counted(kind: QueueKind) {
    let queue = unique("requeue");
    let mut config = config(&queue);
    config.declare.kind = kind;
    let connector = connector(config).await;
    connector.dispatch(&transactions(1)).await.unwrap();
    let first = fetch_n(&connector, 1).await.remove(0);
    let mut current = first;
    for expected in 2..=4 {
        let before = current.transaction().metadata().clone();
        connector
            .settle(&current, &Settlement::Requeue)
            .await
            .unwrap();
        current = fetch_n(&connector, 1).await.remove(0);
        assert_eq!(current.transaction().id(), "t-0");
        assert_eq!(current.transaction().deliveries(), expected, "{kind:?}");
        assert_eq!(current.transaction().metadata(), &before, "{kind:?}");
    }
    connector.settle(&current, &Settlement::Ack).await.unwrap();
    connector.close().await.unwrap();
    let channel = raw().await;
    assert_eq!(depth(&channel, &queue).await, 0);
    delete(&channel, &[&queue]).await;
}

#[tokio::test]
async fn requeues_are_counted_on_classic_queues_by_ergon() {
    requeues_are_counted(QueueKind::Classic).await;
}

#[tokio::test]
async fn requeues_are_counted_on_quorum_queues_by_the_broker() {
    requeues_are_counted(QueueKind::Quorum).await;
}

#[tokio::test]
async fn no_more_than_the_prefetch_is_delivered_before_settling() {
    let queue = unique("prefetch");
    let mut config = config(&queue);
    config.prefetch = 5;
    let connector = connector(config).await;
    connector.dispatch(&transactions(30)).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.extend(connector.fetch(100).await.unwrap());
    }
    assert_eq!(held.len(), 5, "the broker stops at the prefetch");
    for tx in &held {
        connector.settle(tx, &Settlement::Ack).await.unwrap();
    }
    // Settling (and the ack flush) lets the rest through, never more than 5 at a time.
    let mut rest = 0;
    let mut empty = 0;
    while rest < 25 && empty < 20 {
        let batch = connector.fetch(100).await.unwrap();
        assert!(batch.len() <= 5, "{} delivered at once", batch.len());
        empty += usize::from(batch.is_empty());
        for tx in &batch {
            connector.settle(tx, &Settlement::Ack).await.unwrap();
        }
        rest += batch.len();
    }
    assert_eq!(rest, 25);
    connector.close().await.unwrap();
    let channel = raw().await;
    assert_eq!(depth(&channel, &queue).await, 0);
    delete(&channel, &[&queue]).await;
}

#[tokio::test]
async fn an_unroutable_dispatch_is_an_error() {
    let mut config = config(&unique("unroutable"));
    config.publish.routing_key = Some(unique("nowhere"));
    let connector = connector(config.clone()).await;
    let err = connector.dispatch(&transactions(1)).await.unwrap_err();
    assert!(err.to_string().contains("unroutable"), "{err}");
    assert!(!err.is_retryable());
    connector.close().await.unwrap();
    delete(&raw().await, &[config.queue.as_deref().unwrap()]).await;
}

/// Unroutable dispatches and requeues (published again, routable) going out at the same
/// time: each learns its own outcome (a broker's return carries no delivery tag, see the
/// connector's `publish` module), and every requeued message is in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_each_get_their_own_outcome() {
    const N: usize = 200;
    let queue = unique("outcomes");
    let filler = connector(config(&queue)).await;
    filler.dispatch(&transactions(N)).await.unwrap();
    filler.close().await.unwrap();
    let mut mixed = config(&queue);
    mixed.prefetch = N as u16;
    mixed.publish.routing_key = Some(unique("nowhere"));
    let connector = Arc::new(connector(mixed).await);
    let deliveries = fetch_n(&*connector, N).await;
    assert_eq!(deliveries.len(), N);
    let mut publishes = tokio::task::JoinSet::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let requeuer = connector.clone();
        publishes.spawn(async move {
            let requeued = requeuer.settle(&delivery, &Settlement::Requeue).await;
            ("requeue", requeued.map(drop))
        });
        let dispatcher = connector.clone();
        let tx = Transaction::new(format!("unroutable-{i}"), "{}");
        publishes.spawn(async move { ("dispatch", dispatcher.dispatch(&[tx]).await) });
    }
    while let Some(joined) = publishes.join_next().await {
        match joined.unwrap() {
            ("requeue", outcome) => outcome.unwrap(),
            (_, outcome) => {
                let err = outcome.unwrap_err();
                assert!(err.to_string().contains("unroutable"), "{err}");
            }
        }
    }
    connector.close().await.unwrap();
    let channel = raw().await;
    assert_eq!(depth(&channel, &queue).await, N as u32);
    delete(&channel, &[&queue]).await;
}

#[tokio::test]
async fn the_password_never_shows_in_errors() {
    let config = RabbitConfig {
        url: "amqp://guest:not-the-password@127.0.0.1:5672/%2f".into(),
        queue: Some(unique("auth")),
        ..RabbitConfig::default()
    };
    let err = match RabbitConnector::connect(Arc::new(config), "test".into()).await {
        Ok(_) => panic!("connected with a wrong password"),
        Err(err) => err.chain().to_string(),
    };
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(err.contains("guest:***@127.0.0.1"), "{err}");
}

/// One order in, two line items out.
struct Split;

impl Hybrid for Split {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        Ok((0..2)
            .map(|k| {
                tx.child(format!("{}/{k}", tx.id()), tx.payload().clone())
                    .build()
            })
            .collect())
    }
}

async fn run_hybrid(input: RabbitConfig, output: RabbitConfig, n: u64) -> LoopEnd {
    let input = Arc::new(connector(input).await);
    let output = Arc::new(connector(output).await);
    let cx = Context::builder("split")
        .input(input.clone())
        .output(output.clone())
        .build();
    let mut policy = HybridPolicy::default();
    policy.r#loop.limit = Some(n);
    policy.r#loop.streaming = true;
    policy.dispatch.retry.max_attempts = 2;
    policy.dispatch.retry.backoff = Duration::from_millis(1);
    let end = ConsumeLoop::new(
        Arc::new(HybridLifecycle::new(Arc::new(Split))),
        cx,
        Arc::new(policy),
    )
    .run()
    .await
    .unwrap();
    input.close().await.unwrap();
    output.close().await.unwrap();
    end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hybrid_acks_its_input_only_after_the_output_confirmed() {
    let inbound = unique("hy-in");
    let outbound = unique("hy-out");
    let dead = unique("hy-dead");
    let feeder = connector(config(&inbound)).await;
    feeder.dispatch(&transactions(20)).await.unwrap();
    feeder.close().await.unwrap();

    // The output is unroutable first: nothing is acked, everything is dead-lettered.
    let mut input = config(&inbound);
    input.dead_letter = Some(DeadLetterConfig {
        queue: dead.clone(),
    });
    let mut nowhere = config(&outbound);
    nowhere.publish.routing_key = Some(unique("nowhere"));
    run_hybrid(input.clone(), nowhere, 20).await;
    let channel = raw().await;
    assert_eq!(depth(&channel, &inbound).await, 0);
    assert_eq!(
        depth(&channel, &dead).await,
        20,
        "a refused dispatch dead-letters the input"
    );
    assert_eq!(depth(&channel, &outbound).await, 0);

    // Then through a real output: each inbound yields two confirmed messages.
    let feeder = connector(config(&inbound)).await;
    feeder.dispatch(&transactions(20)).await.unwrap();
    feeder.close().await.unwrap();
    assert_eq!(
        run_hybrid(input, config(&outbound), 20).await,
        LoopEnd::LimitReached
    );
    assert_eq!(depth(&channel, &inbound).await, 0);
    assert_eq!(depth(&channel, &outbound).await, 40);
    delete(&channel, &[&inbound, &outbound, &dead]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_reopened_and_nothing_is_lost() {
    let queue = unique("kill");
    let feeder = connector(config(&queue)).await;
    feeder.dispatch(&transactions(300)).await.unwrap();
    feeder.close().await.unwrap();

    let mut config = config(&queue);
    config.prefetch = 20;
    config.reconnect.backoff = Duration::from_millis(50);
    let name = unique("victim");
    let input = RabbitConnector::connect(Arc::new(config), name.clone())
        .await
        .unwrap();
    let mut acked = BTreeSet::new();
    let mut killed = 0;
    let mut empty = 0;
    while acked.len() < 300 && empty < 100 {
        let batch = input.fetch(10).await.unwrap();
        if batch.is_empty() {
            empty += 1;
            continue;
        }
        for tx in batch {
            input.settle(&tx, &Settlement::Ack).await.unwrap();
            acked.insert(tx.id().to_owned());
        }
        if killed == 0 && acked.len() >= 100 {
            killed = kill_connections(&name);
            assert!(killed > 0, "found no connection named {name}");
        }
    }
    assert_eq!(acked.len(), 300, "every message processed, none lost");
    assert!(input.health().await.is_ok(), "connected again");
    input.close().await.unwrap();
    let channel = raw().await;
    assert_eq!(depth(&channel, &queue).await, 0, "and all acked in the end");
    delete(&channel, &[&queue]).await;
}

/// A TLS listener on loopback (the test certificate for `localhost`, signed by the test
/// CA in `tests/tls/`) forwarding each connection to the plain broker: an `amqps://`
/// broker for the test. Returns its port.
async fn tls_front_for_the_broker() -> u16 {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_works_with_the_brokers_ca_and_fails_clearly_without_it() {
    let port = tls_front_for_the_broker().await;
    let channel = raw().await;
    let queue = unique("tls");
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.pem");
    let tls_config = |ca_file: Option<std::path::PathBuf>| {
        let mut config = config(&queue);
        config.url = format!("amqps://guest:guest@localhost:{port}/%2f")
            .as_str()
            .into();
        config.tls.ca_file = ca_file;
        config
    };

    let trusted = connector(tls_config(Some(ca))).await;
    trusted.dispatch(&transactions(3)).await.unwrap();
    let fetched = fetch_n(&trusted, 3).await;
    assert_eq!(fetched.len(), 3);
    for tx in &fetched {
        trusted.settle(tx, &Settlement::Ack).await.unwrap();
    }
    trusted.close().await.unwrap();
    assert_eq!(depth(&channel, &queue).await, 0, "all acked over TLS");

    // The system's roots do not know the test CA: the handshake fails, and says so
    // without the password.
    let err = match RabbitConnector::connect(Arc::new(tls_config(None)), "test".into()).await {
        Ok(_) => panic!("connected to a broker whose certificate nothing vouches for"),
        Err(err) => err.chain().to_string(),
    };
    assert!(
        err.contains(&format!("amqps://guest:***@localhost:{port}")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    delete(&channel, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_delivery_after_acked_stragglers_keeps_the_channel_open() {
    let channel = raw().await;
    let queue = unique("stragglers");
    let mut config = config(&queue);
    config.prefetch = 10;
    let connector = connector(config).await;
    connector.dispatch(&transactions(10)).await.unwrap();
    let fetched = fetch_n(&connector, 10).await;
    assert_eq!(fetched.len(), 10);
    // Nine settled above the first (still "in flight"): more than half the prefetch waits
    // above a gap, so they are acked one by one.
    for tx in &fetched[1..] {
        connector.settle(tx, &Settlement::Ack).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Now the first: the multiple ack must not name a tag already acked alone (the broker
    // would close the channel and requeue the first delivery).
    connector
        .settle(&fetched[0], &Settlement::Ack)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    connector.close().await.unwrap();
    assert_eq!(
        depth(&channel, &queue).await,
        0,
        "every delivery acked, none requeued"
    );
    delete(&channel, &[&queue]).await;
}
