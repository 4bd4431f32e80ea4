//! A backlog of short jobs starts in priority, then age, order even while a worker keeps
//! two claims in flight. Alone in its binary: the order depends on the two claims reaching
//! the database in the order they were made, and a test binary running a dozen other pools
//! beside it on a small machine would measure the machine's scheduling rather than Bosun's.

use std::time::Duration;

use bosun_queue::NewJob;
use bosun_tests::pool_harness::{start_order_pool, Order};
use bosun_tests::{eventually, TestDb};

/// A backlog of short jobs is claimed ahead, with two claims in flight: their jobs still
/// start in claim order, whichever reply comes back first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_of_short_jobs_starts_in_priority_then_age_order() {
    let db = TestDb::new().await;
    db.client.pause_queue("default").await.unwrap();
    let total: i64 = 6000;
    let jobs: Vec<NewJob> = (0..total)
        .map(|i| {
            // Priorities spread over the ids: -2 .. 2 in a scrambled order.
            let priority = i16::try_from((i * 7919) % 5 - 2).unwrap();
            NewJob::from_args(&Order {
                label: format!("{priority}/{i}"),
            })
            .unwrap()
            .priority(priority)
        })
        .collect();
    db.client.enqueue_many(jobs).await.unwrap();
    let (seen, running) = start_order_pool(&db, 1);
    db.client.resume_queue("default").await.unwrap();
    eventually(Duration::from_secs(60), "every job to run", || async {
        (seen.lock().unwrap().len() == usize::try_from(total).unwrap()).then_some(())
    })
    .await;
    running.stop().await;
    let order: Vec<(i16, i64)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|label| {
            let (priority, i) = label.split_once('/').unwrap();
            (priority.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    let inversions = order.windows(2).filter(|w| w[0] > w[1]).count();
    assert_eq!(
        inversions, 0,
        "jobs started out of priority-then-age order {inversions} times"
    );
}
