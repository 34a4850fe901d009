//! Device verification (SAS) between two browsers, over Olm to-device messages: one side starts,
//! the other accepts, both compare 7 emoji (or 3 numbers) and say whether they match; when both
//! did and the MACs over the device keys check, each marks the other's device verified.
//!
//! The flows live in this tab's memory only (a reload cancels them); the result lives in the
//! sealed trust record.

use super::{Runtime, current, runtime};
use crate::{
    chat::{Verify, VerifyStep},
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

/// Flows of this tab, by transaction id.
#[derive(Default)]
pub(crate) struct Flows {
    active: std::collections::HashMap<String, (Verification, VerifiedDevice)>,
    /// Requests not answered yet.
    incoming: std::collections::HashMap<String, (VerifiedDevice, ToDeviceContent)>,
    /// Messages that arrived while their flow was busy (mid-send): handled when it is back.
    parked: std::collections::HashMap<String, Vec<(VerifiedDevice, ToDeviceContent)>>,
}

/// Puts a flow back and handles what arrived for it meanwhile.
fn put_back(rt: &Rc<Runtime>, txn: String, flow: Verification, peer: VerifiedDevice) {
    let parked = {
        let mut flows = rt.flows.borrow_mut();
        flows.active.insert(txn.clone(), (flow, peer));
        flows.parked.remove(&txn).unwrap_or_default()
    };
    for (sender, content) in parked {
        let rt = rt.clone();
        leptos::task::spawn_local(async move { receive(&rt, sender, content).await });
    }
}

/// Takes a flow out to work on it, or parks the message if the flow is busy.
fn take(
    rt: &Runtime,
    txn: &str,
    sender: &VerifiedDevice,
    content: &ToDeviceContent,
) -> Option<(Verification, VerifiedDevice)> {
    let mut flows = rt.flows.borrow_mut();
    let taken = flows.active.remove(txn);
    if taken.is_none() {
        flows.parked.entry(txn.to_owned()).or_default().push((sender.clone(), content.clone()));
    }
    taken
}

fn show(rt: &Runtime, txn: &str, peer: &VerifiedDevice, step: VerifyStep) {
    rt.chat.verify.set(Some(Verify { txn: txn.to_owned(), user: peer.user, device_id: peer.device_id.clone(), step }));
}

fn fail(rt: &Runtime, txn: &str, peer: &VerifiedDevice, why: String) {
    rt.flows.borrow_mut().active.remove(txn);
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

/// Starts verifying `user` (their first listed device).
pub async fn start(user: Uuid) -> Result<(), String> {
    let rt = runtime()?;
    let started = rt
        .vault
        .with(async |m: &mut Machine, relay| {
            let devices = m.devices_of(relay, user).await?;
            rt.take_warnings(m);
            let peer = devices.into_iter().next().ok_or(crate::crypto::CryptoError::NoSession)?;
            let (flow, content) = Verification::start(&m.device, &peer);
            m.send_to(relay, &peer, content).await?;
            Ok::<_, crate::crypto::CryptoError>((flow, peer))
        })
        .await
        .map_err(|e| e.to_string())?;
    let (flow, peer) = started.map_err(|e| match e {
        crate::crypto::CryptoError::NoSession => "they have no device that can be verified yet".to_owned(),
        e => e.to_string(),
    })?;
    let txn = flow.txn().to_owned();
    show(&rt, &txn, &peer, VerifyStep::Waiting);
    put_back(&rt, txn, flow, peer);
    Ok(())
}

/// Accepts the request on screen.
pub async fn accept() {
    let Some(rt) = current() else { return };
    let Some(txn) = rt.chat.verify.with_untracked(|v| v.as_ref().map(|v| v.txn.clone())) else { return };
    let Some((peer, start)) = rt.flows.borrow_mut().incoming.remove(&txn) else { return };
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
            put_back(&rt, txn, flow, peer);
        }
        Ok(Err(e)) => fail(&rt, &txn, &peer, e.to_string()),
        Err(e) => fail(&rt, &txn, &peer, e.to_string()),
    }
}

/// Declines the request on screen, or closes the dialog.
pub fn decline() {
    let Some(rt) = current() else { return };
    if let Some(txn) = rt.chat.verify.with_untracked(|v| v.as_ref().map(|v| v.txn.clone())) {
        let mut flows = rt.flows.borrow_mut();
        flows.incoming.remove(&txn);
        flows.active.remove(&txn);
    }
    rt.chat.verify.set(None);
}

/// The person compared the codes: `matches` or not.
pub async fn confirm(matches: bool) {
    let Some(rt) = current() else { return };
    let Some(txn) = rt.chat.verify.with_untracked(|v| v.as_ref().map(|v| v.txn.clone())) else { return };
    let Some((mut flow, peer)) = rt.flows.borrow_mut().active.remove(&txn) else { return };
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
            refresh_verified(&rt).await;
        }
        Ok(Ok(false)) => {
            show(&rt, &txn, &peer, VerifyStep::Confirmed);
            put_back(&rt, txn, flow, peer);
        }
        Ok(Err(e)) => fail(&rt, &txn, &peer, e.to_string()),
        Err(e) => fail(&rt, &txn, &peer, e.to_string()),
    }
}

/// A verification message from `sender` (already decrypted and checked by the Olm layer).
pub(crate) async fn receive(rt: &Rc<Runtime>, sender: VerifiedDevice, content: ToDeviceContent) {
    match &content {
        ToDeviceContent::SasStart { txn, .. } => {
            let txn = txn.clone();
            show(rt, &txn, &sender, VerifyStep::Incoming);
            rt.flows.borrow_mut().incoming.insert(txn, (sender, content));
        }
        ToDeviceContent::SasKey { txn, .. } => {
            let txn = txn.clone();
            let Some((mut flow, peer)) = take(rt, &txn, &sender, &content) else { return };
            if peer != sender {
                return fail(rt, &txn, &peer, "a verification message came from another device".into());
            }
            let outcome = rt
                .vault
                .with(async |m: &mut Machine, relay| {
                    let (reply, code) = flow.receive_key(&content)?;
                    if let Some(reply) = reply {
                        m.send_to(relay, &peer, reply).await?;
                    }
                    Ok::<_, crate::crypto::CryptoError>(code)
                })
                .await;
            match outcome {
                Ok(Ok(code)) => {
                    show(rt, &txn, &peer, compare(code));
                    put_back(rt, txn, flow, peer);
                }
                Ok(Err(e)) => fail(rt, &txn, &peer, e.to_string()),
                Err(e) => fail(rt, &txn, &peer, e.to_string()),
            }
        }
        ToDeviceContent::SasMac { txn, .. } => {
            let txn = txn.clone();
            let Some((mut flow, peer)) = rt.flows.borrow_mut().active.remove(&txn) else { return };
            if peer != sender {
                return fail(rt, &txn, &peer, "a verification message came from another device".into());
            }
            let outcome = rt.vault.with(async |m: &mut Machine, _| flow.receive_mac(&content, &mut m.trust)).await;
            match outcome {
                Ok(Ok(true)) => {
                    show(rt, &txn, &peer, VerifyStep::Done);
                    refresh_verified(rt).await;
                }
                // Their half is done; ours when the person confirms.
                Ok(Ok(false)) => put_back(rt, txn, flow, peer),
                Ok(Err(e)) => fail(rt, &txn, &peer, e.to_string()),
                Err(e) => fail(rt, &txn, &peer, e.to_string()),
            }
        }
        ToDeviceContent::RoomKey { .. } | ToDeviceContent::Dummy => {}
    }
}
