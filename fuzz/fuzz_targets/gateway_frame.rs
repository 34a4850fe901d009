//! Gateway frames as the server decodes them from a socket (`ClientFrame::decode`), and as the
//! browser decodes the server's (`ServerFrame`): any text is a frame or an error, never a panic,
//! and a frame that decodes encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::model::gateway::{ClientFrame, ServerFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = ClientFrame::decode(text)
        && let Ok(again) = serde_json::to_string(&frame)
        && let Ok(back) = ClientFrame::decode(&again)
    {
        assert_eq!(back, frame, "a frame changed in a round trip");
    }
    let _ = serde_json::from_str::<ServerFrame>(text);
});
