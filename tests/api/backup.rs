//! `backup` while the server takes a load of messages, and `restore` into an empty data
//! directory: counts equal to the manifest, media files with their hashes.

use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use whatsapp_memory::backup::{self, Manifest};
use whatsapp_memory::config::Config;

use crate::helpers::*;
use crate::media::{app_with_twilio, send_media, wait_for_replies, PHOTO};

/// Messages sent while the backup runs.
const LOAD: usize = 2_000;

fn config(database_url: &str, storage_dir: &std::path::Path) -> Config {
    let (database_url, storage_dir) = (database_url.to_string(), storage_dir.display().to_string());
    Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(database_url.clone()),
        "STORAGE_DIR" => Some(storage_dir.clone()),
        _ => None,
    })
    .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_to_what_its_manifest_counts() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let screenshot = std::fs::read(PHOTO.replace("photo_penne.jpg", "screenshot_lambdatest.jpg")).unwrap();
    send_media(&app, ADA, "dinner", &[(twilio.add_media(photo.clone(), "image/jpeg"), "image/jpeg")]).await;
    send_media(&app, BOB, "", &[(twilio.add_media(screenshot.clone(), "image/jpeg"), "image/jpeg")]).await;
    wait_for_replies(&twilio, 2).await;

    let app = Arc::new(app);
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let (app, sent) = (app.clone(), sent.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..LOAD)
                .for_each_concurrent(8, |i| {
                    let (app, sent) = (app.clone(), sent.clone());
                    async move {
                        let phone = format!("+1555000{:04}", i % 20);
                        let response = app.post_webhook(&text_form(&phone, &format!("note {i} to keep"))).await;
                        assert_eq!(response.status(), 200);
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .await;
        })
    };
    eventually("the load under way", || async { sent.load(std::sync::atomic::Ordering::Relaxed) >= 200 }).await;
    let target = tempfile::tempdir().unwrap();
    let backup_dir = target.path().join("backup");
    let manifest: Manifest = backup::backup(&config(&app.database_url, &app.storage_dir), &backup_dir).await.unwrap();
    let during = sent.load(std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    assert!(during < LOAD, "the backup ran while messages arrived ({during} of {LOAD} sent)");

    // Both photos, with the bytes they were sent with.
    let mut hashes: Vec<&str> = manifest.media.iter().map(|f| f.sha256.as_str()).collect();
    hashes.sort();
    let mut expected = vec![sha256(&photo), sha256(&screenshot)];
    expected.sort();
    assert_eq!(hashes, expected);

    let restored_dir = tempfile::tempdir().unwrap();
    let restored_media = restored_dir.path().join("media");
    let sqlite = app.database_url.starts_with("sqlite:");
    let restored_url = if sqlite {
        format!("sqlite://{}/restored.db?mode=rwc", restored_dir.path().display())
    } else {
        // PostgreSQL: the database is pg_dump's; the command restores the media files.
        fresh_database_url(&restored_dir).await
    };
    let restore_config = config(&restored_url, &restored_media);
    // A damaged backup is refused before anything is written.
    let first = backup_dir.join("media").join(&manifest.media[0].path);
    let original = std::fs::read(&first).unwrap();
    let mut damaged = original.clone();
    damaged[100] ^= 0xFF;
    std::fs::write(&first, &damaged).unwrap();
    let error = backup::restore(&restore_config, &backup_dir).await.unwrap_err();
    assert!(format!("{error:#}").contains("does not match the manifest"), "{error:#}");
    assert!(!restored_media.exists(), "nothing written");
    std::fs::write(&first, &original).unwrap();

    let restored = backup::restore(&restore_config, &backup_dir).await.unwrap();
    assert_eq!(restored, manifest);
    for file in &manifest.media {
        let bytes = std::fs::read(restored_media.join(&file.path)).unwrap();
        assert_eq!(sha256(&bytes), file.sha256);
    }
    if sqlite {
        assert_eq!(manifest.database, "sqlite");
        let counts = &manifest.counts;
        assert!(counts["memories"] >= 2 + 200 && counts["memories"] < 2 + LOAD as i64, "{counts:?}");
        // The restored database, opened as the service opens it, holds what the manifest says.
        let db = sea_orm::Database::connect(&restored_url).await.unwrap();
        for (table, expected) in counts {
            let got = scalar_of(&db, &format!("SELECT count(*) FROM {table}")).await;
            assert_eq!(got, *expected, "{table}");
        }
        assert_eq!(app.count("memories").await, 2 + LOAD as i64, "the live database kept taking messages");
        let backup_copy = backup::database_copy(&backup_dir);
        assert!(backup_copy.exists());
    } else {
        assert_eq!(manifest.database, "postgres");
        assert!(manifest.counts.is_empty() && manifest.database_file.is_none());
    }
    // A second restore into the same place is refused: it is no longer empty.
    let error = backup::restore(&restore_config, &backup_dir).await.unwrap_err();
    assert!(format!("{error:#}").contains("is not empty"), "{error:#}");
    // And a backup never writes into a directory with something in it.
    let error = backup::backup(&config(&app.database_url, &app.storage_dir), &backup_dir).await.unwrap_err();
    assert!(format!("{error:#}").contains("is not empty"), "{error:#}");
}

async fn scalar_of(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}
