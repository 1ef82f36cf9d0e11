//! The behaviour every [`Store`] backend must show. Backends call [`run`] from their tests, then
//! reopen the same database and call [`after_reopen`].

use serde_json::json;

use crate::{Store, Write};

/// Writes, reads, lists, deletes and checks atomicity and revisions.
pub async fn run(store: &dyn Store) {
    assert_eq!(
        store.revision().await.unwrap(),
        0,
        "a new store starts at revision 0"
    );
    assert_eq!(store.get("service", "svc-1").await.unwrap(), None);

    let r1 = store
        .commit(vec![
            Write::put("service", "svc-2", json!({"name": "b"})),
            Write::put("service", "svc-1", json!({"name": "a"})),
            Write::put("listener", "l-1", json!({"port": 80})),
        ])
        .await
        .unwrap();
    assert_eq!(r1, 1);
    assert_eq!(
        store.get("service", "svc-1").await.unwrap(),
        Some(json!({"name": "a"}))
    );
    let listed = store.list("service").await.unwrap();
    assert_eq!(
        listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["svc-1", "svc-2"],
        "list is ordered by id and holds only its kind"
    );

    let page = store.list_page("service", None, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, "svc-1", "pages are ordered by id");
    let next = store.list_page("service", Some("svc-1"), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["svc-2"],
        "a page starts after the given id and holds only its kind"
    );
    assert!(store
        .list_page("service", Some("svc-2"), 10)
        .await
        .unwrap()
        .is_empty());

    // Overwrite and delete in one batch.
    let r2 = store
        .commit(vec![
            Write::put("service", "svc-1", json!({"name": "a2"})),
            Write::delete("service", "svc-2"),
            Write::delete("service", "never-existed"),
        ])
        .await
        .unwrap();
    assert!(r2 > r1, "revisions grow");
    assert_eq!(
        store.get("service", "svc-1").await.unwrap(),
        Some(json!({"name": "a2"}))
    );
    assert_eq!(store.get("service", "svc-2").await.unwrap(), None);

    // Documents keep their JSON exactly, including nesting, unicode and large numbers.
    let doc = json!({"nested": {"list": [1, 2.5, "x", null, true]}, "u": "ünï", "big": 9_007_199_254_740_993_u64});
    store
        .commit(vec![Write::put("misc", "d", doc.clone())])
        .await
        .unwrap();
    assert_eq!(store.get("misc", "d").await.unwrap(), Some(doc));
    assert_eq!(store.revision().await.unwrap(), 3);
}

/// Run against the same database after it was closed and opened again.
pub async fn after_reopen(store: &dyn Store) {
    assert_eq!(store.revision().await.unwrap(), 3);
    assert_eq!(
        store.get("service", "svc-1").await.unwrap(),
        Some(json!({"name": "a2"}))
    );
    assert_eq!(store.list("listener").await.unwrap().len(), 1);
    assert_eq!(store.get("service", "svc-2").await.unwrap(), None);
}
