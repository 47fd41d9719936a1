//! Answers are bounded: an agenda comes in pages (by count and by size) that follow each
//! other without gap or duplicate; a group agenda past its size bound is cut and says so.

use super::*;
use agenda_shared::query::{AgendaCursor, MAX_ANSWER_BYTES};
use agenda_shared::query::{AgendaQuery, GroupAgendaQuery};

/// One page of `actor`'s agenda (pending included), and where the next starts.
async fn page(
    m: &Machine,
    actor: Uuid,
    end: i64,
    limit: Option<u32>,
    after: Option<AgendaCursor>,
) -> (Vec<Appointment>, Option<AgendaCursor>, usize) {
    let answer = m
        .query(Query::Agenda(AgendaQuery {
            actor,
            start_ms: 0,
            end_ms: end,
            include_pending: true,
            include_declined: false,
            limit,
            after,
        }))
        .await;
    let size = serde_json::to_vec(&answer).expect("serialisable").len();
    match answer {
        Ok(QueryResult::Appointments { appointments, next }) => (appointments, next, size),
        other => panic!("unexpected {other:?}"),
    }
}

/// Every page from the start, following `next`; the ids in order and each page's size.
async fn all_pages(m: &Machine, actor: Uuid, end: i64, limit: Option<u32>) -> (Vec<Uuid>, Vec<(usize, usize)>) {
    let (mut ids, mut pages, mut after) = (Vec::new(), Vec::new(), None);
    loop {
        let (items, next, size) = page(m, actor, end, limit, after).await;
        pages.push((items.len(), size));
        if let Some(cursor) = next {
            let last = items.last().expect("a cut page is not empty");
            assert_eq!(
                (cursor.start_ms, cursor.id),
                (last.start_ms, last.id),
                "next names the last item"
            );
        }
        ids.extend(items.iter().map(|a| a.id));
        match next {
            Some(cursor) => after = Some(cursor),
            None => return (ids, pages),
        }
        assert!(pages.len() < 1_000, "pages never end");
    }
}

#[tokio::test]
async fn agenda_pages_follow_each_other_without_gap_or_duplicate() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    for k in 0..5 {
        m.book(alice, k * HOUR, k * HOUR + HOUR / 2).await.unwrap();
    }
    // Two meetings at the same instant (alice is asked, as the senior of both groups):
    // the order is by start, then id, and the cursor must tell them apart.
    for name in ["junior1", "junior2"] {
        let junior = m.user(name).await;
        let g = new_group(&mut m, alice, H, Some(100)).await;
        add(&mut m, alice, g, junior, 10).await.unwrap();
        meet(&mut m, junior, g, 2 * HOUR + HOUR / 2, 3 * HOUR, Privacy::Full)
            .await
            .unwrap();
    }
    let (everything, pages) = all_pages(&m, alice, DAY, None).await;
    assert_eq!((everything.len(), pages.len()), (7, 1));

    let (paged, pages) = all_pages(&m, alice, DAY, Some(2)).await;
    assert_eq!(paged, everything, "same items, same order, none twice, none missing");
    assert_eq!(pages.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
}

#[tokio::test]
async fn big_agendas_are_cut_below_the_answer_bound_and_group_agendas_say_they_were_cut() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let g = new_group(&mut m, alice, H, Some(100)).await;
    // 5,000 characters of four bytes each: about 20 KB per appointment, so that 500 of
    // them would be far over the bound.
    let long = "𝄞".repeat(5_000);
    let count = 300;
    for k in 0..count {
        let (_, cmd) = personal_appointment(
            &format!("slot {k}"),
            &long,
            k * HOUR,
            k * HOUR + HOUR / 2,
            Privacy::Full,
        );
        m.run(Some(alice), cmd).await.expect("book");
    }
    let range = count * HOUR;
    let one_item = long.len() + 1_000;

    let (first, next, size) = page(&m, alice, range, Some(500), None).await;
    assert!(next.is_some(), "cut by size, not by count");
    assert!(first.len() < count as usize);
    assert!(size <= MAX_ANSWER_BYTES + one_item, "{size} bytes in one page");

    let (ids, pages) = all_pages(&m, alice, range, Some(500)).await;
    assert!(pages.len() >= 2, "{pages:?}");
    for (_, size) in &pages {
        assert!(*size <= MAX_ANSWER_BYTES + one_item, "{size} bytes in one page");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (ids.len(), unique.len()),
        (count as usize, count as usize),
        "all, once each"
    );

    // The group agenda has no pages: it is cut, flagged, and stays within the bound.
    let answer = m
        .query(Query::GroupAgenda(GroupAgendaQuery {
            actor: alice,
            group_id: g,
            start_ms: 0,
            end_ms: range,
        }))
        .await;
    let size = serde_json::to_vec(&answer).expect("serialisable").len();
    let Ok(QueryResult::GroupAgenda { members, truncated, .. }) = answer else {
        panic!("group agenda")
    };
    assert!(truncated, "the answer says it was cut");
    assert!(busy_of(&members, alice).len() < count as usize);
    assert!(size < 5 * 1024 * 1024, "{size} bytes");
}

/// The bound is on the answer as sent: quotes, backslashes and line breaks take two bytes
/// each in JSON, and count as such.
#[tokio::test]
async fn text_that_json_escapes_still_counts_in_full_towards_the_bound() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let g = new_group(&mut m, alice, H, Some(100)).await;
    // 5,000 characters that serialise to 10,000 bytes.
    let long = "\"\\\n".repeat(5_000 / 3);
    let count = 600;
    for k in 0..count {
        let (_, cmd) = personal_appointment(
            &format!("slot {k}"),
            &long,
            k * HOUR,
            k * HOUR + HOUR / 2,
            Privacy::Full,
        );
        m.run(Some(alice), cmd).await.expect("book");
    }
    let range = count * HOUR;
    let one_item = 2 * long.len() + 1_000;

    let (ids, pages) = all_pages(&m, alice, range, Some(500)).await;
    assert_eq!(ids.len(), count as usize);
    for (items, size) in &pages {
        assert!(
            *size <= MAX_ANSWER_BYTES + one_item,
            "a page of {items} items is {size} bytes, over the bound of {MAX_ANSWER_BYTES}"
        );
    }
    let answer = m
        .query(Query::GroupAgenda(GroupAgendaQuery {
            actor: alice,
            group_id: g,
            start_ms: 0,
            end_ms: range,
        }))
        .await;
    let size = serde_json::to_vec(&answer).expect("serialisable").len();
    let Ok(QueryResult::GroupAgenda { truncated, .. }) = answer else {
        panic!("group agenda")
    };
    assert!(
        size < 5 * 1024 * 1024,
        "the group agenda is {size} bytes (truncated: {truncated})"
    );
}
