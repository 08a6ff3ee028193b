//! `relay_frame`: `relay::Frame::decode`, what crosses the browser relay's
//! WebSocket.

use p2pchat_core::relay::{Frame, FrameError, MAX_FRAME, MAX_HEADER, MAX_PAYLOAD};

/// Decodes `data` as a relay frame. The encoding has one form per frame,
/// so a frame that decodes encodes back to exactly `data`; a refusal's
/// reason fits the bytes.
pub fn relay_frame(data: &[u8]) {
    match Frame::decode(data) {
        Ok(frame) => {
            assert!(data.len() <= MAX_FRAME);
            if let Frame::Datagram { payload, .. } = &frame {
                assert!(payload.len() <= MAX_PAYLOAD);
            }
            assert_eq!(
                frame.encode().unwrap(),
                data,
                "not the frame's one encoding"
            );
        }
        Err(FrameError::Truncated) => assert!(data.len() < MAX_HEADER),
        Err(FrameError::Kind(kind)) => assert_eq!(data.first(), Some(&kind)),
        Err(FrameError::Family(family)) => assert_eq!(data.get(1), Some(&family)),
        Err(FrameError::TooLarge(len)) => {
            assert!(len > MAX_PAYLOAD);
            assert!(data.len() > MAX_PAYLOAD);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
