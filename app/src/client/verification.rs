//! Device verification (SAS) between two browsers, over Olm to-device messages: one side starts,
//! the other accepts, both compare 7 emoji (or 3 numbers) and say whether they match; when both
//! did and the MACs over the device keys check, each marks the other's device verified.
//!
//! The flows live in this tab's memory only (a reload cancels them); the result lives in the
//! sealed trust record.

use super::{Runtime, current, runtime};
use crate::{
    chat::{ChatError, DeviceChoice, Verify, VerifyStep},
    crypto::{
        device::VerifiedDevice,
        machine::Machine,
        olm::ToDeviceContent,
        trust::{SAS_EMOJI, ShortCode, Verification},
    },
};
use leptos::prelude::*;
use std::rc::Rc;
use uuid::Uuid;

/// Flows of this tab, by transaction id. Every step (a message received, the person accepting or
/// confirming) holds the lock from start to end, so a message that arrives while this side is
/// still sending waits for it instead of finding the flow missing.
pub(crate) type Flows = futures::lock::Mutex<FlowTable>;

#[derive(Default)]
pub(crate) struct FlowTable {
    active: std::collections::HashMap<String, (Verification, VerifiedDevice)>,
    /// Requests not answered yet.
    incoming: std::collections::HashMap<String, (VerifiedDevice, ToDeviceContent)>,
    /// The devices on screen to choose from (someone with several).
    choosing: Vec<VerifiedDevice>,
}

/// The transaction id shown while the person picks a device (no flow exists yet).
const CHOOSING: &str = "";

fn show(rt: &Runtime, txn: &str, peer: &VerifiedDevice, step: VerifyStep) {
    rt.chat.verify.set(Some(Verify { txn: txn.to_owned(), user: peer.user, device_id: peer.device_id.clone(), step }));
}

fn fail(rt: &Runtime, txn: &str, peer: &VerifiedDevice, why: String) {
    show(rt, txn, peer, VerifyStep::Failed(why));
}

fn compare(code: ShortCode) -> VerifyStep {
    VerifyStep::Compare {
        emoji: code
            .emoji
            .iter()
            .map(|i| SAS_EMOJI[usize::from(*i) % 64])
            .map(|(e, n)| (e.to_owned(), n.to_owned()))
            .collect(),
        numbers: code.decimals,
    }
}

/// Refreshes the set of verified users from the trust record.
pub(crate) async fn refresh_verified(rt: &Runtime) {
    if let Ok(users) = rt.vault.with(async |m: &mut Machine, _| m.trust.verified_users()).await {
        rt.chat.verified.set(users);
    }
}

/// Another device of this person was just verified: it gets every key this one holds, so it reads
/// the history too.
async fn after_verified(rt: &Runtime, peer: VerifiedDevice) {
    // Cross-signing first: one's own device gets the master key's signature, and the person's
    // master key is verified through the device just verified.
    let learned = rt.vault.with(async |m: &mut Machine, relay| m.after_verification(relay, &peer).await).await;
    if let Ok(Err(e)) | Err(e) = learned {
        leptos::logging::warn!("cross-signing after the verification failed: {e}");
    }
    refresh_verified(rt).await;
    if peer.user != rt.chat.me.get_value() {
        return;
    }
    let sent = rt.vault.with(async |m: &mut Machine, relay| m.forward_all(relay, &peer).await).await;
    if let Ok(Err(e)) | Err(e) = sent {
        leptos::logging::warn!("could not share keys with your other device: {e}");
    }
}

/// `user`'s checked devices, each with whether it is verified here (warnings shown).
async fn devices_of(rt: &Runtime, user: Uuid) -> Result<Vec<(bool, VerifiedDevice)>, ChatError> {
    rt.vault
        .with(async |m: &mut Machine, relay| {
            let devices = m.devices_of(relay, user).await;
            rt.take_warnings(m);
            devices.map(|all| all.into_iter().map(|d| (m.trust.is_verified(&d), d)).collect::<Vec<_>>())
        })
        .await
        .map_err(ChatError::crypto)?
        .map_err(ChatError::crypto)
}

/// Starts verifying `user`: at once if they have one device, else after the person picked one.
pub async fn start(user: Uuid) -> Result<(), ChatError> {
    let rt = runtime()?;
    let mut flows = rt.flows.lock().await;
    let devices = devices_of(&rt, user).await?;
    // One's own devices: every one but this.
    let here = rt.vault.device_id().to_owned();
    let devices: Vec<_> = devices.into_iter().filter(|(_, d)| d.user != user || d.device_id != here).collect();
    match devices.as_slice() {
        [] => Err(ChatError::NotReady("they have no device that can be verified yet")),
        [(_, only)] => begin(&rt, &mut flows, only.clone()).await,
        several => {
            let choices = several
                .iter()
                .map(|(verified, d)| DeviceChoice {
                    device_id: d.device_id.clone(),
                    fingerprint: super::vault::fingerprint(&d.ed25519),
                    verified: *verified,
                })
                .collect();
            flows.choosing = several.iter().map(|(_, d)| d.clone()).collect();
            rt.chat.verify.set(Some(Verify {
                txn: CHOOSING.to_owned(),
                user,
                device_id: String::new(),
                step: VerifyStep::Choose(choices),
            }));
            Ok(())
        }
    }
}

/// Starts verifying one named device of `user` (one's own other device, from the start page).
pub async fn start_device(user: Uuid, device_id: String) -> Result<(), ChatError> {
    let rt = runtime()?;
    let mut flows = rt.flows.lock().await;
    let peer = devices_of(&rt, user)
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d.device_id == device_id)
        .ok_or(ChatError::NotReady("that device is no longer listed"))?;
    begin(&rt, &mut flows, peer).await
}

/// The person picked `device_id` from the list on screen.
pub async fn choose(device_id: String) {
    let Some(rt) = current() else { return };
    let mut flows = rt.flows.lock().await;
    let Some(peer) = std::mem::take(&mut flows.choosing).into_iter().find(|d| d.device_id == device_id) else { return };
    if let Err(e) = begin(&rt, &mut flows, peer.clone()).await {
        fail(&rt, CHOOSING, &peer, e.to_string());
    }
}

/// Sends the request to `peer` and waits for its answer.
async fn begin(rt: &Runtime, flows: &mut FlowTable, peer: VerifiedDevice) -> Result<(), ChatError> {
    let flow = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            let (flow, content) = Verification::start(&m.device, &peer);
            m.send_to(relay, &peer, content).await.map(|()| flow)
        })
        .await
        .map_err(ChatError::crypto)?
        .map_err(ChatError::crypto)?;
    let txn = flow.txn().to_owned();
    show(rt, &txn, &peer, VerifyStep::Waiting);
    flows.active.insert(txn, (flow, peer));
    Ok(())
}

/// The transaction on screen.
fn on_screen(rt: &Runtime) -> Option<String> {
    rt.chat.verify.with_untracked(|v| v.as_ref().map(|v| v.txn.clone()))
}

/// Accepts the request on screen.
pub async fn accept() {
    let Some(rt) = current() else { return };
    let mut flows = rt.flows.lock().await;
    let Some(txn) = on_screen(&rt) else { return };
    let Some((peer, start)) = flows.incoming.remove(&txn) else { return };
    let accepted = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            let (flow, reply) = Verification::accept(&m.device, &peer, &start)?;
            m.send_to(relay, &peer, reply).await?;
            Ok::<_, crate::crypto::CryptoError>(flow)
        })
        .await;
    match accepted {
        Ok(Ok(flow)) => {
            show(&rt, &txn, &peer, VerifyStep::Waiting);
            flows.active.insert(txn, (flow, peer));
        }
        Ok(Err(e)) => fail(&rt, &txn, &peer, e.to_string()),
        Err(e) => fail(&rt, &txn, &peer, e.to_string()),
    }
}

/// Declines the request on screen, or closes the dialog.
pub fn decline() {
    let Some(rt) = current() else { return };
    let Some(txn) = on_screen(&rt) else { return };
    rt.chat.verify.set(None);
    leptos::task::spawn_local(async move {
        let mut flows = rt.flows.lock().await;
        flows.incoming.remove(&txn);
        flows.active.remove(&txn);
        flows.choosing.clear();
    });
}

/// The person compared the codes: `matches` or not.
pub async fn confirm(matches: bool) {
    let Some(rt) = current() else { return };
    let mut flows = rt.flows.lock().await;
    let Some(txn) = on_screen(&rt) else { return };
    let Some((mut flow, peer)) = flows.active.remove(&txn) else { return };
    if !matches {
        show(
            &rt,
            &txn,
            &peer,
            VerifyStep::Failed(
                "The codes differ: this device is not verified. Someone may be in between; do not trust it.".into(),
            ),
        );
        return;
    }
    let outcome = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            let mac = flow.confirm()?;
            m.send_to(relay, &peer, mac).await?;
            Ok::<_, crate::crypto::CryptoError>(flow.finish(&mut m.trust))
        })
        .await;
    match outcome {
        Ok(Ok(true)) => {
            show(&rt, &txn, &peer, VerifyStep::Done);
            rt.chat.mark_verified(&peer.ed25519);
            drop(flows);
            refresh_verified(&rt).await;
            after_verified(&rt, peer).await;
        }
        Ok(Ok(false)) => {
            show(&rt, &txn, &peer, VerifyStep::Confirmed);
            flows.active.insert(txn, (flow, peer));
        }
        Ok(Err(e)) => fail(&rt, &txn, &peer, e.to_string()),
        Err(e) => fail(&rt, &txn, &peer, e.to_string()),
    }
}

/// A verification message from `sender` (already decrypted and checked by the Olm layer).
pub(crate) async fn receive(rt: &Rc<Runtime>, sender: VerifiedDevice, content: ToDeviceContent) {
    let mut flows = rt.flows.lock().await;
    let txn = match &content {
        ToDeviceContent::SasStart { txn, .. } => {
            let txn = txn.clone();
            show(rt, &txn, &sender, VerifyStep::Incoming);
            flows.incoming.insert(txn, (sender, content));
            return;
        }
        ToDeviceContent::SasKey { txn, .. } | ToDeviceContent::SasMac { txn, .. } => txn.clone(),
        _ => return,
    };
    // A flow this tab does not know (cancelled, or from before a reload) is ignored.
    let Some((mut flow, peer)) = flows.active.remove(&txn) else { return };
    if peer != sender {
        return fail(rt, &txn, &peer, "a verification message came from another device".into());
    }
    let outcome = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            if let ToDeviceContent::SasMac { .. } = content {
                return Ok(flow.receive_mac(&content, &mut m.trust)?.then_some(VerifyStep::Done));
            }
            let (reply, code) = flow.receive_key(&content)?;
            if let Some(reply) = reply {
                m.send_to(relay, &peer, reply).await?;
            }
            Ok::<_, crate::crypto::CryptoError>(Some(compare(code)))
        })
        .await;
    match outcome {
        Ok(Ok(Some(VerifyStep::Done))) => {
            show(rt, &txn, &peer, VerifyStep::Done);
            rt.chat.mark_verified(&peer.ed25519);
            drop(flows);
            refresh_verified(rt).await;
            after_verified(rt, peer).await;
        }
        Ok(Ok(step)) => {
            // After their MAC, our half waits for the person to confirm.
            if let Some(step) = step {
                show(rt, &txn, &peer, step);
            }
            flows.active.insert(txn, (flow, peer));
        }
        Ok(Err(e)) => fail(rt, &txn, &peer, e.to_string()),
        Err(e) => fail(rt, &txn, &peer, e.to_string()),
    }
}
