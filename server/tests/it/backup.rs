//! The server-side key backup through the router, on both backends: only the owner reads or
//! writes a backup, sizes and batches are bounded, keys are replaced by id, pages in order, a
//! deleted version takes its keys with it, and a refused upload stores nothing.

use crate::common::{self, Prepare, on_both_backends};

use app::model::{
    RegistrationMode,
    backup::{BackupPage, BackupVersion, MAX_BACKUP_BATCH},
};
use common::{Client, new_user};
use serde_json::json;

async fn signed_in(state: &domain::Core, name: &str) -> (Client, uuid::Uuid) {
    let user = new_user(&state.db, name).await;
    (common::live::client_with(state, &common::live::cookies_for(state, user.id).await), user.id)
}

fn b64(bytes: &[u8]) -> String {
    app::model::messages::Ciphertext(bytes.to_vec()).to_base64()
}

on_both_backends! {
    async fn only_the_owner_reads_and_writes_a_backup(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (mut alice, _) = signed_in(&state, "alice").await;
        let (mut bob, _) = signed_in(&state, "bob").await;
        assert_eq!(alice.call_json("backup/current", "{}").await.body, "null");

        let created = alice.call_json("backup/create", &json!({ "algorithm": "chatalot.v1.test", "auth_data": b64(b"wrapped") }).to_string()).await;
        assert_eq!(created.status, 200, "{}", created.body);
        let version: BackupVersion = serde_json::from_str(&created.body).unwrap();
        let keys = |ids: &[(&str, &[u8])]| json!({ "version": version.id, "keys": ids.iter().map(|(id, s)| json!({ "key_id": id, "sealed": b64(s) })).collect::<Vec<_>>() }).to_string();
        let up = alice.call_json("backup/upload", &keys(&[("k2", b"two"), ("k1", b"one"), ("k3", b"three")])).await;
        assert_eq!((up.status, up.body.as_str()), (200, "3"));
        // The same id again replaces the key (a better copy), and the count stays.
        let up = alice.call_json("backup/upload", &keys(&[("k1", b"ONE")])).await;
        assert_eq!(up.body, "3");
        let current: Option<BackupVersion> = serde_json::from_str(&alice.call_json("backup/current", "{}").await.body).unwrap();
        assert_eq!(current.map(|v| (v.id, v.keys, v.auth_data.0)), Some((version.id, 3, b"wrapped".to_vec())));

        // Pages in key_id order.
        let page: BackupPage = serde_json::from_str(&alice.call_json("backup/download", &json!({ "version": version.id, "limit": 2 }).to_string()).await.body).unwrap();
        assert_eq!(page.keys.iter().map(|k| (k.key_id.as_str(), k.sealed.0.as_slice())).collect::<Vec<_>>(), vec![("k1", &b"ONE"[..]), ("k2", &b"two"[..])]);
        assert_eq!(page.next.as_deref(), Some("k2"));
        let page: BackupPage = serde_json::from_str(&alice.call_json("backup/download", &json!({ "version": version.id, "after": "k2" }).to_string()).await.body).unwrap();
        assert_eq!((page.keys.len(), page.next), (1, None));

        // Bob learns nothing of alice's backup and cannot write to it or delete it.
        assert_eq!(bob.call_json("backup/current", "{}").await.body, "null");
        for (endpoint, body) in [
            ("backup/upload", keys(&[("k9", b"bob's")])),
            ("backup/download", json!({ "version": version.id }).to_string()),
            ("backup/delete", json!({ "version": version.id }).to_string()),
        ] {
            let reply = bob.call_json(endpoint, &body).await;
            assert_eq!(reply.status, 404, "{endpoint}: {}", reply.body);
        }
        assert_eq!(Client::new(&state).call_json("backup/current", "{}").await.status, 401);
        assert_eq!(serde_json::from_str::<BackupVersion>(&alice.call_json("backup/current", "{}").await.body).unwrap().keys, 3);

        // Deleting the version takes its keys with it.
        assert_eq!(alice.call_json("backup/delete", &json!({ "version": version.id }).to_string()).await.status, 200);
        assert_eq!(alice.call_json("backup/current", "{}").await.body, "null");
        use sea_orm::{EntityTrait, PaginatorTrait};
        assert_eq!(entity::key_backup_key::Entity::find().count(&state.db).await.unwrap(), 0);
    }

    async fn bad_backup_input_is_refused_and_stores_nothing(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (mut alice, _) = signed_in(&state, "alice").await;
        for (body, field) in [
            (json!({ "algorithm": "", "auth_data": b64(b"w") }), "algorithm"),
            (json!({ "algorithm": "a b", "auth_data": b64(b"w") }), "algorithm"),
            (json!({ "algorithm": "x", "auth_data": "" }), "auth_data"),
            (json!({ "algorithm": "x", "auth_data": b64(&[0; 4097]) }), "auth_data"),
        ] {
            let reply = alice.call_json("backup/create", &body.to_string()).await;
            assert_eq!(reply.status, 422, "{body}: {}", reply.body);
            assert!(reply.body.contains(field), "{body}: {}", reply.body);
        }
        let version: BackupVersion = serde_json::from_str(&alice.call_json("backup/create", &json!({ "algorithm": "x", "auth_data": b64(b"w") }).to_string()).await.body).unwrap();
        let good = json!({ "key_id": "good", "sealed": b64(b"s") });
        let too_many: Vec<_> = (0..=MAX_BACKUP_BATCH).map(|i| json!({ "key_id": format!("k{i}"), "sealed": b64(b"s") })).collect();
        for keys in [
            json!([good, { "key_id": "", "sealed": b64(b"s") }]),
            json!([good, { "key_id": "no spaces", "sealed": b64(b"s") }]),
            json!([good, { "key_id": "x".repeat(65), "sealed": b64(b"s") }]),
            json!([good, { "key_id": "empty", "sealed": "" }]),
            json!([good, { "key_id": "big", "sealed": b64(&[1; 8 * 1024 + 1]) }]),
            json!([good, good]),
            json!([]),
            json!(too_many),
        ] {
            let reply = alice.call_json("backup/upload", &json!({ "version": version.id, "keys": keys }).to_string()).await;
            assert_eq!(reply.status, 422, "{}", reply.body);
        }
        let garbage = alice.call_json("backup/upload", r#"{"version":"not-a-uuid","keys":[]}"#).await;
        assert!(garbage.status >= 400 && garbage.status < 500, "{}", garbage.body);
        let current: BackupVersion = serde_json::from_str(&alice.call_json("backup/current", "{}").await.body).unwrap();
        assert_eq!(current.keys, 0, "a refused upload stored keys");

        // At most four versions at once.
        for _ in 0..3 {
            assert_eq!(alice.call_json("backup/create", &json!({ "algorithm": "x", "auth_data": b64(b"w") }).to_string()).await.status, 200);
        }
        let fifth = alice.call_json("backup/create", &json!({ "algorithm": "x", "auth_data": b64(b"w") }).to_string()).await;
        assert_eq!(fifth.status, 422, "{}", fifth.body);
    }
}
