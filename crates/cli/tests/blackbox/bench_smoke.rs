//! The load generator (`bench/loadgen`) against the real server, so it does not rot: a few
//! share cycles in each connection mode and a small claim storm, all without errors and with
//! exactly one winner. No timing is asserted. Runs on the data directory and (in the S3 pass)
//! on S3, where the ticket and the download point at the bucket.

use std::time::Duration;

use once_loadgen::{
    ClaimStorm, ConnectionMode, LoadConfig, OnceCycle, Stop, run_claim_storm, run_once_cycle,
};

use crate::harness::*;

/// Rate limits off: the cycles and the storm come from one key and one address.
fn unlimited_server() -> Server {
    Server::start_with(&[
        ("ONCE_KEY_RATE_LIMIT", "0"),
        ("ONCE_ADDRESS_RATE_LIMIT", "0"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_once_cycles_in_both_connection_modes() {
    let server = unlimited_server();
    let cycle = OnceCycle {
        base: server.base.clone(),
        token: server.token.clone(),
        size: 1024,
        create_only: false,
    };
    for connection in [ConnectionMode::New, ConnectionMode::Keepalive] {
        let config = LoadConfig {
            clients: 2,
            connection,
            stop: Stop::Count(20),
            warmup: Duration::ZERO,
        };
        let report = run_once_cycle(&config, &cycle).await.unwrap();
        assert_eq!(
            (report.ops, report.errors),
            (20, 0),
            "{connection:?}: {report:?}"
        );
        assert_eq!(report.statuses.get("303"), Some(&20), "{report:?}");
        // Every download is a 200 (checked byte for byte, or it would be an error); on S3 the
        // bucket's answer to the upload and the completion are 200s too.
        let ok = report.statuses.get("200").copied().unwrap_or(0);
        assert!(ok == 20 || ok == 60, "{report:?}");
        match connection {
            // Four requests a cycle on the server alone (S3 adds the bucket and the complete).
            ConnectionMode::New => assert!(report.connections >= 80, "{report:?}"),
            // Reused: about one per client and authority (the server, and the bucket on S3).
            ConnectionMode::Keepalive => assert!(report.connections < 20, "{report:?}"),
        }
    }
    let created = run_once_cycle(
        &LoadConfig {
            clients: 2,
            connection: ConnectionMode::Keepalive,
            stop: Stop::Count(10),
            warmup: Duration::ZERO,
        },
        &OnceCycle {
            create_only: true,
            ..cycle
        },
    )
    .await
    .unwrap();
    assert_eq!((created.ops, created.errors), (10, 0), "{created:?}");
    assert_eq!(created.statuses.get("201"), Some(&10), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_claim_storm_has_exactly_one_winner() {
    let server = unlimited_server();
    let report = run_claim_storm(&ClaimStorm {
        base: server.base.clone(),
        token: server.token.clone(),
        claimers: 50,
        rounds: 2,
        size: 1024,
    })
    .await
    .unwrap();
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(report.bad_rounds, 0, "{report:?}");
    for round in &report.per_round {
        assert_eq!(round.winners, 1, "{report:?}");
        assert!(round.winner_download_ok, "{report:?}");
        assert_eq!(round.statuses.values().sum::<u64>(), 50, "{report:?}");
    }
}
