//! Racing for the last room: many clerks booking, or assigning, the same last room at once
//! get exactly one success; the others a clear 409; the counters and room-nights stay exact.

use serde_json::json;

use crate::reservations::{assert_invariants, count, hotel};

#[tokio::test]
async fn thirty_two_clerks_booking_the_last_suite_at_once_get_one_booking() {
    let h = hotel().await;
    let body = h.body(h.ste(), 1, 2);
    let tasks = (0..32).map(|_| h.book(body.clone()));
    let answers = futures_join_all(tasks).await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 409).collect();
    assert_eq!(created, 1, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(refused.len(), 31);
    assert!(refused.iter().all(|r| r.code() == "no_availability"));
    let ste = h.ste().to_string();
    let sold = count(
        &h.node,
        &format!(
            "SELECT COALESCE(MAX(sold), 0) FROM room_type_nights WHERE room_type_id = '{ste}'"
        ),
    )
    .await;
    assert_eq!(sold, 1);
    assert_eq!(count(&h.node, "SELECT COUNT(*) FROM reservations").await, 1);
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn two_bookings_racing_for_one_room_never_share_a_room_night() {
    let h = hotel().await;
    let a = h.booked(h.body(h.dbl(), 1, 2)).await;
    let b = h.booked(h.body(h.dbl(), 1, 2)).await;
    let room = h.inv.room_types[0].room_ids[0].clone();
    let ids = [a["id"].as_str().expect("id"), b["id"].as_str().expect("id")];
    let tasks = (0..16).map(|i| h.action(ids[i % 2], "assign-room", json!({ "room_id": room })));
    let answers = futures_join_all(tasks).await;
    let winners: Vec<String> =
        answers.iter().filter(|r| r.status == 200).map(|r| r.str("id")).collect();
    assert!(!winners.is_empty());
    assert!(winners.iter().all(|w| *w == winners[0]), "both reservations got the room");
    assert!(answers.iter().filter(|r| r.status != 200).all(|r| r.code() == "room_unavailable"));
    let nights =
        count(&h.node, &format!("SELECT COUNT(*) FROM room_nights WHERE room_id = '{room}'")).await;
    assert_eq!(nights, 2);
    assert_invariants(&h.node).await;
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("done")).collect()
}
