//! The key backup from this browser: turning it on (a recovery key shown once), uploading every
//! session key this device gets, restoring history on a new device with the recovery key (with
//! progress), a new recovery key, and turning it off. The sealing is `crypto::backup`'s.

use super::{Runtime, runtime};
use crate::{
    api::backup::{create_backup, current_backup, delete_backup, download_backup_keys, upload_backup_keys},
    chat::{Backup, ChatError},
    crypto::{
        backup::{self, ALGORITHM, BackupKey, BackupState, RecoveryKey, Restored},
        machine::Machine,
    },
    error::AppError,
    model::backup::{BackupVersion, MAX_BACKUP_BATCH},
};
use leptos::prelude::{GetUntracked, Set, Update};
use std::{collections::HashMap, rc::Rc};

/// Asks the server which backup is current and compares it with this browser's: sets the status,
/// forgets a backup key whose version was replaced or removed (by another device), and uploads
/// what is missing.
pub(super) async fn refresh(rt: &Rc<Runtime>) {
    let Ok(server) = current_backup().await else { return };
    let ours = rt.vault.with_backup(async |_, state: &mut Option<BackupState>| {
        if state.as_ref().is_some_and(|s| server.as_ref().is_none_or(|v| v.id != s.version)) {
            *state = None;
        }
        state.is_some()
    });
    let Ok(ours) = ours.await else { return };
    rt.chat.backup.set(match (&server, ours) {
        (None, _) => Backup::Off,
        (Some(v), true) => Backup::On { keys: v.keys },
        (Some(v), false) => Backup::Locked { keys: v.keys },
    });
    if ours {
        upload(rt).await;
    }
}

/// Uploads the session keys not backed up yet, a batch at a time. Called after anything that may
/// have brought new keys (a room key received, a message sent, a restore).
pub(super) async fn upload(rt: &Rc<Runtime>) {
    if rt.uploading.replace(true) {
        // The running upload loops until nothing is pending.
        rt.upload_again.set(true);
        return;
    }
    loop {
        rt.upload_again.set(false);
        let batch = rt
            .vault
            .with_backup(async |m: &mut Machine, state: &mut Option<BackupState>| {
                let Some(state) = state.as_ref() else { return Ok::<_, crate::crypto::CryptoError>(None) };
                let mut batch = backup::pending(&m.channels, &state.key, &state.uploaded, MAX_BACKUP_BATCH - 1)?;
                // The master key too (cross-signing), so a device restored later can sign itself.
                if let Some(master) = &m.master
                    && !state.key.master_uploaded(&state.uploaded)
                {
                    batch.push((state.key.seal_master(master)?, 0));
                }
                Ok(Some((state.version, batch)))
            })
            .await;
        let Ok(Ok(Some((version, batch)))) = batch else { break };
        if batch.is_empty() {
            if !rt.upload_again.get() {
                break;
            }
            continue;
        }
        let keys = batch.iter().map(|(k, _)| k.clone()).collect();
        match upload_backup_keys(version, keys).await {
            Ok(total) => {
                let _ = rt
                    .vault
                    .with_backup(async |_, state: &mut Option<BackupState>| {
                        if let Some(state) = state.as_mut().filter(|s| s.version == version) {
                            for (k, first) in &batch {
                                state.uploaded.insert(k.key_id.clone(), *first);
                            }
                        }
                    })
                    .await;
                rt.chat.backup.update(|b| {
                    if let Backup::On { keys } = b {
                        *keys = total;
                    }
                });
            }
            // Replaced or removed from another device: this browser's key no longer applies.
            Err(AppError::NotFound) => {
                rt.uploading.set(false);
                Box::pin(refresh(rt)).await;
                return;
            }
            Err(e) => {
                leptos::logging::warn!("key backup upload failed: {e}");
                break;
            }
        }
    }
    rt.uploading.set(false);
}

/// Downloads every sealed key of `version` and imports what opens under `key`, showing progress.
/// Returns what it did and the ids it imported (with the start of each copy).
async fn import_all(
    rt: &Rc<Runtime>,
    version: &BackupVersion,
    key: &BackupKey,
) -> Result<(Restored, HashMap<String, u32>), ChatError> {
    let mut restored = Restored::default();
    let mut uploaded = HashMap::new();
    let mut master = None;
    let mut after = None;
    rt.chat.backup.set(Backup::Restoring { done: 0, total: version.keys });
    loop {
        let page = download_backup_keys(version.id, after.take(), None).await?;
        rt.vault
            .with(async |m: &mut Machine, _| {
                backup::restore(&mut m.channels, key, &page.keys, &mut restored, &mut uploaded, &mut master)
            })
            .await
            .map_err(ChatError::crypto)?;
        let done = (restored.imported + restored.damaged) as u64;
        rt.chat.backup.set(Backup::Restoring { done, total: version.keys.max(done) });
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if let Some(secret) = master {
        let adopted = rt.vault.with(async |m: &mut Machine, relay| m.adopt_master(relay, secret).await).await;
        if let Ok(Err(e)) | Err(e) = adopted {
            leptos::logging::warn!("could not sign this device with the restored master key: {e}");
        }
    }
    Ok((restored, uploaded))
}

/// Turns the backup on, or replaces it (a new recovery key): the keys of the old backup come into
/// this browser first, then a new backup key wrapped under a new recovery key holds them all, and
/// the old version is removed. Returns the recovery key, to show once.
pub async fn turn_on() -> Result<String, ChatError> {
    let rt = runtime()?;
    let old = current_backup().await?;
    let old_key = rt
        .vault
        .with_backup(async |_, state: &mut Option<BackupState>| state.as_ref().map(|s| (s.version, s.key.clone())))
        .await
        .map_err(ChatError::crypto)?;
    if let Some(old) = &old {
        let Some((_, old_key)) = old_key.filter(|(v, _)| *v == old.id) else {
            // Replacing a backup this browser cannot open would drop the keys of other devices.
            return Err(ChatError::NotReady(
                "enter your recovery key first: replacing a backup this browser cannot open would lose the keys in it",
            ));
        };
        let shown = rt.chat.backup.get_untracked();
        if let Err(e) = import_all(&rt, old, &old_key).await {
            rt.chat.backup.set(shown);
            return Err(e);
        }
    }
    let recovery = RecoveryKey::generate().map_err(ChatError::crypto)?;
    let key = BackupKey::generate().map_err(ChatError::crypto)?;
    let version = create_backup(ALGORITHM.to_owned(), key.wrap(&recovery).map_err(ChatError::crypto)?).await?;
    rt.vault
        .with_backup(async |_, state: &mut Option<BackupState>| {
            *state = Some(BackupState { version: version.id, key, uploaded: Default::default() });
        })
        .await
        .map_err(ChatError::crypto)?;
    rt.chat.backup.set(Backup::On { keys: 0 });
    upload(&rt).await;
    if let Some(old) = old {
        let _ = delete_backup(old.id).await;
    }
    Ok(recovery.display())
}

/// Turns the backup off: the server forgets every sealed key.
pub async fn turn_off() -> Result<(), ChatError> {
    let rt = runtime()?;
    if let Some(v) = current_backup().await? {
        delete_backup(v.id).await?;
    }
    rt.vault.with_backup(async |_, state: &mut Option<BackupState>| *state = None).await.map_err(ChatError::crypto)?;
    rt.chat.backup.set(Backup::Off);
    Ok(())
}

/// Restores history with the recovery key the person typed: downloads every sealed key (progress
/// in `chat.backup`), imports them, and from then on this browser backs up its keys too. A wrong
/// or mistyped key changes nothing.
pub async fn restore_backup(typed: String) -> Result<u64, ChatError> {
    let rt = runtime()?;
    let recovery = RecoveryKey::parse(&typed).map_err(|e| ChatError::Refused(e.to_string()))?;
    let Some(version) = current_backup().await? else {
        return Err(ChatError::NotReady("there is no key backup to restore from"));
    };
    let key = BackupKey::unwrap(&version.auth_data, &recovery).map_err(|e| ChatError::Refused(e.to_string()))?;
    let shown = rt.chat.backup.get_untracked();
    let (restored, uploaded) = match import_all(&rt, &version, &key).await {
        Ok(done) => done,
        Err(e) => {
            rt.chat.backup.set(shown);
            return Err(e);
        }
    };
    rt.vault
        .with_backup(async |_, state: &mut Option<BackupState>| {
            *state = Some(BackupState { version: version.id, key, uploaded });
        })
        .await
        .map_err(ChatError::crypto)?;
    rt.chat.backup.set(Backup::On { keys: version.keys });
    rt.retry_undecrypted().await;
    upload(&rt).await;
    Ok(restored.damaged as u64)
}
